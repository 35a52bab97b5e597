package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// runDataCenter serves a Jira Data Center site: no keys server, no app;
// the users, tokens and ADFS relying party the flags name.
func runDataCenter(ctx context.Context, o *options, stdout, stderr io.Writer, ready func(*jirasim.Site)) error {
	l, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("site: %w", err)
	}
	opts := []jirasim.SiteOption{jirasim.WithListener(l), jirasim.WithTimeZone(o.tz)}
	if o.tls {
		opts = append(opts, jirasim.WithTLS())
	}
	if o.contextPath != "" {
		opts = append(opts, jirasim.WithContextPath(o.contextPath))
	}
	site := jirasim.NewDataCenterSite(opts...)
	defer site.Close()
	start := time.Now()
	if err := site.Generate(o.seed, o.spec); err != nil {
		return err
	}
	site.SetLatency(o.latency)
	if o.rate > 0 {
		site.SetRateLimit(o.rate, o.burst)
	}
	site.SetDCMaxResults(o.dcMaxResults)
	site.SetResultWindow(o.resultWindow)
	if o.anonymous404 {
		site.SetAnonymousStatus(http.StatusNotFound)
	}
	for kind, p := range map[jirasim.InjectKind]float64{jirasim.InjectServerError: o.fault5xx, jirasim.InjectReset: o.faultReset,
		jirasim.InjectTruncated: o.faultTruncate, jirasim.InjectMalformed: o.faultMalformed, jirasim.InjectSlow: o.faultSlow} {
		if p > 0 {
			site.Inject(jirasim.Injection{Kind: kind, Path: "/rest/", Probability: p})
		}
	}
	user := func(name string) {
		site.AddDCUser(name, name, name+"@example.com")
	}
	for _, v := range o.dcUsers {
		name, pw, _ := strings.Cut(v, ":")
		user(name)
		site.SetPassword(name, pw)
	}
	for _, v := range o.pats {
		name, tok, _ := strings.Cut(v, ":")
		user(name)
		site.AddPAT(name, tok)
	}
	if o.adfs != "" {
		id, resource, _ := strings.Cut(o.adfs, ":")
		site.EnableADFS(jirasim.ADFSConfig{ClientID: id, Resource: resource})
		for _, v := range o.adfsUsers {
			name, pw, _ := strings.Cut(v, ":")
			user(name)
			site.SetADFSPassword(name, pw)
		}
		fmt.Fprintf(stdout, "jirasim adfs  %s (client_id %s, resource %s)\n", site.ADFSURL(), id, resource)
	}
	fmt.Fprintf(stdout, "jirasim site  %s  Data Center (%d issues in %d projects, %d users, seed %d; pages of up to %d, result window %d; generated in %v)\n",
		site.BaseURL, o.spec.Issues, o.spec.Projects, o.spec.Users, o.seed, o.dcMaxResults, o.resultWindow, time.Since(start).Round(time.Millisecond))
	if ready != nil {
		ready(site)
	}
	if o.churn > 0 {
		go churn(ctx, site, o, false, stderr)
	}
	<-ctx.Done()
	fmt.Fprintf(stdout, "jirasim stopping after %d requests (%d answered 429); %d refused past the result window\n",
		site.TotalRequests(), site.RateLimited(), site.WindowRefusals())
	return nil
}
