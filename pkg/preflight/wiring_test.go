package preflight

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
)

// TestDefaultClientsHonourStandardEnv runs preflight the way the CLI will:
// config.LoadDefaultConfig, and no EC2 or IMDS client given, so Run builds
// them itself. AWS_ENDPOINT_URL_EC2 and AWS_EC2_METADATA_SERVICE_ENDPOINT must
// lead those clients to the fakes.
func TestDefaultClientsHonourStandardEnv(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_EC2":                e.ec2S.URL,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT":   e.imdsS.URL,
		"AWS_EC2_METADATA_DISABLED":           "",
		"AWS_ENDPOINT_URL":                    "",
		"AWS_ENDPOINT_URL_S3":                 "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
		"AWS_ACCESS_KEY_ID":                   testAKID,
		"AWS_SECRET_ACCESS_KEY":               testSecret,
		"AWS_SESSION_TOKEN":                   "",
		"AWS_PROFILE":                         "",
		"AWS_REGION":                          "us-east-1",
		"AWS_MAX_ATTEMPTS":                    "1",
		"AWS_CONFIG_FILE":                     filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":         filepath.Join(dir, "credentials"),
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	rep := e.run(t, func(o *Options) {
		o.AWS = cfg
		o.S3 = e.s3Client() // built from cfg; only its dialer is the test's
		o.EC2, o.IMDS = nil, nil
	})
	wantVerdict(t, rep, VerdictPass, 0)
	want(t, rep, CheckCredentials, StatusPass, "EnvConfigCredentials")
	want(t, rep, CheckIMDS, StatusPass, "i-0abc123")
	if e.imds.Calls() == 0 || e.ec2.Called("DescribeRouteTables") == 0 {
		t.Errorf("default clients did not reach the fakes: imds %d, ec2 %d", e.imds.Calls(), e.ec2.Total())
	}
}
