// Command connect is the SEI Connect app for Jira Cloud: the HTTP service
// (serve, the default), and administration subcommands that share its
// configuration (migrate, keygen).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
}

const usage = `usage: connect [command]

commands:
  serve     run the HTTP service (default)
  migrate   apply database migrations and exit
  demo      a first look: the service, a simulated Jira site, pairing and a full sync
  keygen    print a new ENCRYPTION_KEYS entry
  tenants create --name NAME     create a tenant; prints {"tenant_id", "api_key"} (the key is shown once)
  apikeys create --tenant ID     add an API key to a tenant; prints {"tenant_id", "api_key", "prefix"}
  apikeys revoke --key PREFIX    revoke an API key by its id or visible prefix
`

// run is main without the process: tests call it with their own
// environment, arguments and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, getenv, stderr, nil)
	case "migrate":
		return migrate(ctx, getenv, stdout, stderr)
	case "tenants", "apikeys":
		return admin(ctx, cmd, args, getenv, stdout, stderr)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "keygen":
		return keygen(stdout)
	case "help", "-h", "--help":
		_, err := io.WriteString(stdout, usage)
		return err
	default:
		return errors.New("unknown command " + cmd + "\n" + usage)
	}
}
