package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"time"

	"github.com/sei-io/jira-connect/internal/app"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/integrations"
)

// admin runs the tenants/apikeys subcommands. They print JSON on stdout so
// scripts can read the one-time API key; it is never logged.
func admin(ctx context.Context, group string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet(group+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "tenant name")
	tenant := fs.String("tenant", "", "tenant id")
	key := fs.String("key", "", "API key id or visible prefix (sei_xxxxxxxx)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg, stderr)
	db, err := app.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := &integrations.Service{DB: db, Now: time.Now, Log: log}
	out := json.NewEncoder(stdout)

	switch group + " " + verb {
	case "tenants create":
		if *name == "" {
			return errors.New("tenants create: --name is required")
		}
		t, apiKey, err := svc.CreateTenant(ctx, *name)
		if err != nil {
			return err
		}
		return out.Encode(map[string]string{"tenant_id": t.ID, "name": t.Name, "api_key": apiKey})
	case "apikeys create":
		if *tenant == "" {
			return errors.New("apikeys create: --tenant is required")
		}
		apiKey, prefix, err := svc.CreateAPIKey(ctx, *tenant)
		if err != nil {
			return err
		}
		return out.Encode(map[string]string{"tenant_id": *tenant, "api_key": apiKey, "prefix": prefix})
	case "apikeys revoke":
		if *key == "" && fs.NArg() == 1 {
			*key = fs.Arg(0)
		}
		if *key == "" {
			return errors.New("apikeys revoke: --key (id or prefix) is required")
		}
		prefix, err := svc.RevokeAPIKey(ctx, *key)
		if err != nil {
			return err
		}
		return out.Encode(map[string]any{"revoked": true, "prefix": prefix})
	}
	return errors.New("unknown command " + group + " " + verb + "\n" + usage)
}
