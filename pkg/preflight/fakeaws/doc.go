// Package fakeaws is test support, not product code: httptest handlers that
// speak the real wire formats of the AWS services preflight talks to, so
// that tests drive the real aws-sdk-go-v2 clients (and the real s3bak
// binary) against them.
//
//   - IMDS: IMDSv2's token rules (PUT /latest/api/token with a TTL header,
//     the TTL echoed in the reply, 401 for GETs without the token, 403 for
//     a PUT carrying X-Forwarded-For, 404 for unknown paths).
//   - EC2: the Query API (form POST Action=…&Version=…, Filter.N.Name /
//     Filter.N.Value.M and NAME.N lists, XML answers with <item> sets, paging
//     with <nextToken>, <Response><Errors> error bodies such as a 403
//     UnauthorizedOperation).
//   - S3: HEAD bucket only, with x-amz-bucket-region on 200, 301 and 403.
//
// Point the SDK at them with BaseEndpoint / imds.Options.Endpoint, or, for a
// whole process, with the standard AWS_ENDPOINT_URL_EC2 and
// AWS_EC2_METADATA_SERVICE_ENDPOINT environment variables.
//
// The scenario helpers (InstanceMeta, GatewayEndpointVPC, NATOnlyVPC)
// describe one node: instance i-0abc123 in subnet-0priv of vpc-0abc
// (10.0.0.0/16), us-east-1. Set a fake's fields before its server takes
// requests; the fakes only lock what they record.
package fakeaws
