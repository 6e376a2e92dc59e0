package main

import (
	"encoding/json"
	"fmt"
	"io"
)

// checkOutput validates an --output value: a table for people, JSON for
// programs.
func checkOutput(s string) error {
	if s != "table" && s != "json" {
		return &usageError{fmt.Errorf("--output %q: want table or json", s)}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
