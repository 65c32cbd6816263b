package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var staticFS embed.FS

// staticFiles serves the embedded CSS and images under names that carry a
// hash of their content, so they can be cached for a year and a new release
// is still picked up at once.
type staticFiles struct {
	urls   map[string]string // plain name → /static/hashed name
	byName map[string]staticFile
}

type staticFile struct {
	body        []byte
	contentType string
	etag        string
}

func loadStatic() (*staticFiles, error) {
	st := &staticFiles{urls: map[string]string{}, byName: map[string]staticFile{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])[:16]
		name := path.Base(p)
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + h + ext
		ct := mime.TypeByExtension(ext)
		if ct == "" {
			ct = "application/octet-stream"
		}
		st.urls[name] = "/static/" + hashed
		st.byName[hashed] = staticFile{body: body, contentType: ct, etag: `"` + h + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load static files: %w", err)
	}
	return st, nil
}

// url returns the hashed URL of a static file. An unknown name is a bug in
// a template; the error fails the render, which logs it.
func (st *staticFiles) url(name string) (string, error) {
	u, ok := st.urls[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return u, nil
}

func (st *staticFiles) serve(w http.ResponseWriter, r *http.Request) {
	f, ok := st.byName[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(f.body)
}
