package hbase

import (
	"strings"
	"testing"
)

// TestWhere: the steps say on which host to run them, and take the HBase
// root from restore's --hbase-root, quoted for the shell; without it they
// show how to give an hdfs:// root or a mounted one.
func TestWhere(t *testing.T) {
	for _, tc := range []struct {
		root string
		want []string
	}{
		{"", []string{"on this host (the restored tree is in /restore/x)", "hbase-site.xml", "HBASE_ROOTDIR=hdfs://NAMENODE:8020/hbase", "--hbase-root"}},
		{"hdfs://nn1:8020/hbase", []string{"HBASE_ROOTDIR='hdfs://nn1:8020/hbase'\n", "use the ExportSnapshot step"}},
		{"/mnt/it's hbase", []string{`HBASE_ROOTDIR='/mnt/it'\''s hbase'` + "\n"}},
	} {
		got := Where("/restore/x", tc.root)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("root %q: %q not in\n%s", tc.root, w, got)
			}
		}
		if tc.root == "/mnt/it's hbase" && strings.Contains(got, "ExportSnapshot") {
			t.Errorf("a mounted root needs no ExportSnapshot note:\n%s", got)
		}
	}
}
