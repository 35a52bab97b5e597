package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/sei-io/jira-connect/internal/app"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/secrets"
)

// serve runs the HTTP service until ctx ends, then shuts down in order:
// stop accepting, drain requests, close the database. listening, when not
// nil, receives the bound address (tests listen on :0).
func serve(ctx context.Context, getenv func(string) string, logw io.Writer, listening chan<- string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg, logw)
	a, err := app.Open(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground() // after the HTTP server has drained (deferred LIFO, before db.Close)
	if err := a.Start(bg); err != nil {
		return err
	}

	// Listen before serving so a taken port fails at once, not in a goroutine.
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	srv := app.NewServer(a.Handler, log)
	log.Info("listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL.String(), "database", cfg.RedactedDatabaseURL(), "env", cfg.Env)
	if listening != nil {
		listening <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Then the jobs, before the database closes under them.
	if err := a.Stop(sctx); err != nil {
		log.Warn("background jobs did not stop cleanly", "error", err.Error())
	}
	log.Info("stopped")
	return nil
}

func migrate(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	db, err := app.OpenStore(ctx, cfg, app.NewLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	cur, _, err := db.SchemaStatus(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "schema at version %d\n", cur)
	return err
}

func keygen(stdout io.Writer) error {
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, spec)
	return err
}
