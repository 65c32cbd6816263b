package change

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestNoAdapterImports holds the layout rule: a domain package never
// imports a storage or transport adapter, so the change rules can be read
// and tested without a database or a server.
func TestNoAdapterImports(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	banned := []string{"/internal/store", "/internal/web", "/internal/api", "/internal/server", "database/sql", "net/http"}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			for _, b := range banned {
				if strings.HasSuffix(path, b) || strings.Contains(path, b+"/") {
					t.Errorf("%s imports %s: domain packages must not import adapters", name, path)
				}
			}
		}
	}
}
