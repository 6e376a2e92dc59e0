package main

import (
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
		if f.Changed || f.Name == "config" {
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
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	out := make(map[string][]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				out[k] = append(out[k], fmt.Sprint(e))
			}
		case map[string]any:
			return nil, fmt.Errorf("config file %s: %s: want a value or a list", file, k)
		default:
			out[k] = []string{fmt.Sprint(v)}
		}
	}
	return out, nil
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
