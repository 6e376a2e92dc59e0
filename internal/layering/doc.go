// Package layering holds the test that keeps the module's package graph
// layered (see layering_test.go); it has no code of its own.
package layering
