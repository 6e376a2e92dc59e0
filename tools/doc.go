// Package tools exists so that this module can pin developer tools.
package tools
