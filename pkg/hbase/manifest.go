package hbase

// Decoded snapshot manifests: only what s3bak needs to find the files a
// snapshot references (decode.go fills these in).

type tableName struct{ ns, qual string }

type reference struct {
	splitKey []byte
	top      bool // Range TOP = 0, BOTTOM = 1
}

type storeFile struct {
	name    string
	ref     *reference // embedded Reference (v2 manifests of split daughters)
	size    int64
	hasSize bool
}

type familyFiles struct {
	name  string
	files []storeFile
}

type regionInfo struct {
	regionID  uint64
	table     tableName
	startKey  []byte
	endKey    []byte
	replicaID int32
}

type regionManifest struct {
	info     regionInfo
	families []familyFiles
}

type dataManifest struct {
	table   tableName // from table_schema; empty when unset
	regions []regionManifest
}
