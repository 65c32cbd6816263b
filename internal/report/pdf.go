// Package report turns Patchward's records into documents people file and
// hand to auditors: today the written policy as PDF; KPIs and evidence packs
// build on it.
package report

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/patchward/patchward/internal/errs"
)

// DefaultChromium is where Debian installs Chromium.
const DefaultChromium = "/usr/bin/chromium"

// PDF prints a self-contained HTML document (no network fetches) to an
// A4 PDF with a headless Chromium: the browser's print engine lays out
// tables and page breaks the way the HTML's print CSS asks, which no Go PDF
// library matches. The page is loaded from a private temporary file and the
// browser may fetch nothing else.
func PDF(ctx context.Context, chromium string, html []byte) ([]byte, error) {
	if chromium == "" {
		chromium = DefaultChromium
	}
	if _, err := exec.LookPath(chromium); err != nil {
		return nil, errs.E(errs.Unsupported, "PDF output needs Chromium at %s (Debian: apt-get install chromium); Markdown and HTML need nothing", chromium)
	}
	dir, err := os.MkdirTemp("", "patchward-pdf")
	if err != nil {
		return nil, fmt.Errorf("print PDF: %w", err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "document.html")
	if err := os.WriteFile(src, html, 0o600); err != nil {
		return nil, fmt.Errorf("print PDF: %w", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		// Root in a container has no user namespace for the sandbox.
		chromedp.NoSandbox,
		// Nothing but the local file: no proxy, no DNS for external names.
		chromedp.Flag("proxy-server", "127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
	)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+src)); err != nil {
		return nil, fmt.Errorf("print PDF: load the document: %w", err)
	}
	out, err := chromedp.Run(bctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		res, err := cdp.Call(ctx, t, page.PrintToPDF, page.PrintToPDFParams{
			PrintBackground:     ptr(true),
			PreferCSSPageSize:   ptr(true),
			PaperWidth:          8.27, // A4, inches
			PaperHeight:         11.69,
			DisplayHeaderFooter: ptr(false),
		})
		if err != nil {
			return nil, err
		}
		return res.Data, nil
	})
	if err != nil {
		return nil, fmt.Errorf("print PDF: %w", err)
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
