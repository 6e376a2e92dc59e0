package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/preflight"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

// preflightFlags are shared by `preflight` and `backup`, which runs it first.
type preflightFlags struct {
	resolve       []string
	natPricePerGB float64
}

func (p *preflightFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&p.resolve, "resolve", nil, "HOST=IP[,IP…]: use these addresses for HOST instead of DNS in the route analysis (repeatable)")
	cmd.Flags().Float64Var(&p.natPricePerGB, "nat-price-per-gb", preflight.DefaultNATPricePerGB, "NAT gateway processing price in USD per GB, for the cost estimate")
}

func (p *preflightFlags) run(ctx context.Context, c *transfer.Client, node manifest.Node, estimate func() int64) (*preflight.Report, error) {
	resolve, err := preflight.ParseResolve(p.resolve)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--resolve: %w", err)}
	}
	s3c, awsCfg := c.SDK()
	kms, kmsKey := c.KMS()
	return preflight.Run(ctx, preflight.Options{
		Bucket: c.Bucket, AWS: awsCfg, S3: s3c, Resolve: resolve,
		Objects: c, Root: node.Root(),
		Settings: c, KMS: kms, KMSKeyID: kmsKey, RequireObjectLock: c.Retaining(),
		Estimate: estimate, NATPricePerGB: p.natPricePerGB,
	}), nil
}

type preflightOptions struct {
	preflightFlags
	estimate int64
	output   string
}

func newPreflightCommand(g *globalOptions) *cobra.Command {
	o := &preflightOptions{}
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Prove that this node's S3 traffic to the bucket takes a VPC endpoint, not a NAT",
		Long: `preflight checks credentials, instance identity (IMDSv2), the bucket and its region, the
bucket host's addresses, the subnet's route table with longest-prefix match against the S3 prefix
list, the winning target (gateway or interface endpoint vs NAT/IGW), the endpoint policy, and what
a NAT path would cost. Exit 0: pass; 1: fail; 2: could not determine.`,
		Example: `  s3bak preflight --bucket backups
  s3bak preflight --bucket backups --estimate-bytes 2TiB --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := checkOutput(o.output); err != nil {
				return err
			}
			node, err := g.nodeRef()
			if err != nil {
				return err
			}
			client, err := g.client(ctx)
			if err != nil {
				return err
			}
			rep, err := o.run(ctx, client, node, func() int64 { return o.estimate })
			if err != nil {
				return err
			}
			if o.output == "json" {
				err = rep.WriteJSON(g.stdout)
			} else {
				err = rep.WriteTable(g.stdout)
			}
			if err != nil {
				return err
			}
			if code := rep.ExitCode(); code != 0 {
				return &exitCodeError{code, fmt.Errorf("preflight verdict: %s", rep.Verdict)}
			}
			return nil
		},
	}
	o.register(cmd)
	cmd.Flags().Var(&units.Size{P: &o.estimate}, "estimate-bytes", "bytes a backup would move, for the NAT cost estimate, e.g. 2TiB")
	cmd.Flags().StringVar(&o.output, "output", "table", "table or json")
	return cmd
}

// gate runs the preflight before a backup: FAIL stops it unless the
// operator accepts the NAT path; "unknown" (e.g. not on EC2) is logged.
func (p *preflightFlags) gate(ctx context.Context, g *globalOptions, cl *transfer.Client, estimate int64, allowNAT bool) error {
	node, err := g.nodeRef()
	if err != nil {
		return err
	}
	rep, err := p.run(ctx, cl, node, func() int64 { return estimate })
	if err != nil {
		return err
	}
	return p.judge(g, rep, allowNAT)
}

// background starts the gate's checks and returns at once; wait waits for
// them and, when judge is set, returns what the gate would have. A backup
// runs them beside its other first requests: the checks are half a dozen
// round trips to S3 one after the other. Without judge the report is
// dropped (the backup had nothing to do), but the checks still end before
// wait returns, so that their probe object is removed.
func (p *preflightFlags) background(ctx context.Context, g *globalOptions, cl *transfer.Client, estimate func() int64, allowNAT bool) (wait func(judge bool) error) {
	node, err := g.nodeRef()
	if err != nil {
		return func(bool) error { return err }
	}
	type result struct {
		rep *preflight.Report
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rep, err := p.run(ctx, cl, node, estimate)
		ch <- result{rep, err}
	}()
	return func(judge bool) error {
		r := <-ch
		if !judge {
			return nil
		}
		if r.err != nil {
			return r.err
		}
		return p.judge(g, r.rep, allowNAT)
	}
}

// judge turns a preflight report into the gate's verdict: nil to go on.
func (p *preflightFlags) judge(g *globalOptions, rep *preflight.Report, allowNAT bool) error {
	switch rep.Verdict {
	case preflight.VerdictPass:
		g.logger.Info("preflight passed", "verdict", rep.Verdict)
	case preflight.VerdictUnknown:
		g.logger.Warn("preflight could not prove the S3 path; continuing", "verdict", rep.Verdict)
	case preflight.VerdictFail:
		// A bucket, credentials or permissions problem is not a routing
		// problem: say what it is, and --allow-nat cannot help.
		for _, id := range []string{preflight.CheckCredentials, preflight.CheckBucket, preflight.CheckPermissions,
			preflight.CheckEncryption, preflight.CheckObjectLock} {
			if c, ok := rep.Check(id); ok && c.Status == preflight.StatusFail {
				return fmt.Errorf("preflight %s check failed: %s; %s", id, c.Detail, c.Hint)
			}
		}
		if allowNAT {
			g.logger.Warn("preflight failed; continuing because of --allow-nat", "verdict", rep.Verdict)
			return nil
		}
		_ = rep.WriteTable(g.stderr)
		return &exitCodeError{exitPreflight, errors.New("preflight failed: S3 traffic would not take a VPC endpoint (see above); fix the route, or pass --allow-nat (or --skip-preflight)")}
	}
	return nil
}
