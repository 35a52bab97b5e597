package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// tokenPool holds HS256 tokens signed in advance, perSite for each site,
// each bound by its qsh to POST target. Jira signs every webhook afresh;
// doing that here would take CPU from the server on a small machine, and
// the service does not track token ids, so reusing a valid token costs it
// exactly what a fresh one would. Tokens live 3 minutes; the pool is
// re-signed well before they expire.
type tokenPool struct {
	sites   []*jirasim.Site
	target  string
	perSite int
	tokens  atomic.Pointer[[][]string]
}

func newTokenPool(sites []*jirasim.Site, target string, perSite int) (*tokenPool, error) {
	p := &tokenPool{sites: sites, target: target, perSite: perSite}
	if err := p.sign(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *tokenPool) sign() error {
	now := time.Now()
	all := make([][]string, len(p.sites))
	for i, s := range p.sites {
		all[i] = make([]string, p.perSite)
		for k := range all[i] {
			tok, err := s.Token(http.MethodPost, p.target, now)
			if err != nil {
				return fmt.Errorf("sign a token for site %d: %w", i, err)
			}
			all[i][k] = tok
		}
	}
	p.tokens.Store(&all)
	return nil
}

// token returns a token of site for the n-th request overall; requests go
// round robin over sites, so n/len(sites) walks through the site's tokens.
func (p *tokenPool) token(site int, n uint64) string {
	all := *p.tokens.Load()
	ts := all[site]
	return ts[(n/uint64(len(all)))%uint64(len(ts))]
}

func (p *tokenPool) refreshEvery(ctx context.Context, d time.Duration, logw io.Writer) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.sign(); err != nil {
				logf(logw, "warning: re-signing tokens: %v", err)
			}
		}
	}
}
