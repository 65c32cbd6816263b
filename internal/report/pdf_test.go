package report

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/patchward/patchward/internal/policy"
)

// TestPolicyPDF prints the default policy document with the real Chromium
// and checks the result is a multi-page PDF. With CI=true a missing
// Chromium fails the test instead of skipping it.
func TestPolicyPDF(t *testing.T) {
	if _, err := os.Stat(DefaultChromium); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is missing at %s (scripts/setup.sh installs it): %v", DefaultChromium, err)
		}
		t.Skipf("no Chromium at %s", DefaultChromium)
	}
	html, err := policy.Render(policy.Default(), policy.FormatHTML, policy.RenderMeta{})
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := PDF(context.Background(), "", html)
	if err != nil {
		t.Fatalf("PDF: %v", err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) || !bytes.Contains(pdf, []byte("%%EOF")) {
		t.Fatalf("output is not a PDF (%d bytes, starts %q)", len(pdf), pdf[:min(len(pdf), 16)])
	}
	// The policy runs to several A4 pages; one page would mean the
	// document was cut or never loaded.
	pages := len(regexp.MustCompile(`/Type\s*/Page[^s]`).FindAll(pdf, -1))
	if pages < 3 {
		t.Errorf("PDF has %d pages; want the whole policy (several pages)", pages)
	}
}

func TestPDFWithoutChromium(t *testing.T) {
	if _, err := PDF(context.Background(), "/nonexistent/chromium", []byte("<p>x</p>")); err == nil {
		t.Fatal("PDF with no Chromium: want an error naming what to install")
	}
}
