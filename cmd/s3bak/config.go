package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

const defaultConfigFile = "/etc/s3bak/config.yaml"

// commandLineOnly annotates a flag that is never read from S3BAK_<FLAG> or
// the file: one whose name means something else to another command (the
// file's tag: is backup's snapshot tag, not restore's selection).
const commandLineOnly = "s3bak/command-line-only"

// applyConfig fills every flag the command line did not set, from
// S3BAK_<FLAG> in the environment, else from the YAML file. A flag's default
// never overrides the file: only flags left unset are filled.
func applyConfig(cmd *cobra.Command, file string) error {
	explicit := file != "" || os.Getenv("S3BAK_CONFIG") != ""
	if file == "" {
		file = os.Getenv("S3BAK_CONFIG")
	}
	if file == "" {
		file = defaultConfigFile
	}
	values, err := readConfig(file)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		values, err = nil, nil
	}
	if err != nil {
		return err
	}
	var firstErr error
	setErr := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, only := f.Annotations[commandLineOnly]; f.Changed || f.Name == "config" || only {
			return
		}
		env := "S3BAK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := setFlag(cmd, f, splitList(f, v)); err != nil {
				setErr(fmt.Errorf("%s: %w", env, err))
			}
			return
		}
		if v, ok := values[f.Name]; ok {
			if err := setFlag(cmd, f, v); err != nil {
				setErr(fmt.Errorf("%s: %s: %w", file, f.Name, err))
			}
		}
	})
	for k := range values {
		if cmd.Flags().Lookup(k) == nil && cmd.Root().PersistentFlags().Lookup(k) == nil && !knownElsewhere(cmd.Root(), k) {
			setErr(fmt.Errorf("%s: unknown key %q (keys are flag names, e.g. bucket, data-dir)", file, k))
		}
	}
	return firstErr
}

// knownElsewhere accepts keys that belong to another command's flags, so
// one file can configure backup and restore alike.
func knownElsewhere(root *cobra.Command, name string) bool {
	for _, c := range root.Commands() {
		if c.Flags().Lookup(name) != nil {
			return true
		}
	}
	return false
}

func readConfig(file string) (map[string][]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	// Values are taken as the text written, from the YAML nodes: decoded
	// into Go values and printed back, a date, a number or an empty value
	// would reach the flag changed (tag: 2026-11-25 as a time, cluster: 010
	// as 8, prefix: as "<nil>").
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	out := map[string][]string{}
	if len(doc.Content) == 0 {
		return out, nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: want keys and values (flag: value)", file)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i].Value, resolveAlias(root.Content[i+1])
		switch v.Kind {
		case yaml.ScalarNode:
			t, err := scalarText(v)
			if err != nil {
				return nil, fmt.Errorf("config file %s: %s: %w", file, k, err)
			}
			out[k] = []string{t}
		case yaml.SequenceNode:
			for _, e := range v.Content {
				e = resolveAlias(e)
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("config file %s: %s: want a list of values, not of lists or mappings", file, k)
				}
				t, err := scalarText(e)
				if err != nil {
					return nil, fmt.Errorf("config file %s: %s: %w", file, k, err)
				}
				out[k] = append(out[k], t)
			}
		default:
			return nil, fmt.Errorf("config file %s: %s: want a value or a list", file, k)
		}
	}
	return out, nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// scalarText is a scalar's text as written; null is empty and !!binary is
// its decoded bytes.
func scalarText(n *yaml.Node) (string, error) {
	switch n.Tag {
	case "!!null":
		return "", nil
	case "!!binary":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			return "", fmt.Errorf("not base64: %w", err)
		}
		return string(b), nil
	}
	return n.Value, nil
}

func isList(f *pflag.Flag) bool {
	return strings.HasSuffix(f.Value.Type(), "Slice") || strings.HasSuffix(f.Value.Type(), "Array")
}

func splitList(f *pflag.Flag, v string) []string {
	if isList(f) {
		return strings.Split(v, ",")
	}
	return []string{v}
}

func setFlag(cmd *cobra.Command, f *pflag.Flag, values []string) error {
	if !isList(f) && len(values) != 1 {
		return fmt.Errorf("want one value, got %d", len(values))
	}
	for _, v := range values {
		if err := cmd.Flags().Set(f.Name, v); err != nil {
			return err
		}
	}
	return nil
}
