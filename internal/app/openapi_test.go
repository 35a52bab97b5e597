package app

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// TestOpenAPICoversRoutes keeps openapi.yaml in step with the router: every
// route the service serves is documented, and nothing documented is missing.
func TestOpenAPICoversRoutes(t *testing.T) {
	h := start(t, storetest.Open(t, "sqlite"), "", nil)
	documented := map[string]bool{}
	f, err := os.Open("../../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var path string
	inPaths := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && path != "" && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") && strings.HasSuffix(line, ":"):
			switch m := strings.TrimSuffix(strings.TrimSpace(line), ":"); m {
			case "get", "post", "put", "patch", "delete":
				documented[strings.ToUpper(m)+" "+path] = true
			}
		case line != "" && !strings.HasPrefix(line, " "):
			inPaths = line == "paths:"
		}
	}
	served := map[string]bool{}
	for _, r := range h.app.Handler.(*gin.Engine).Routes() {
		p := r.Path
		// gin's :param becomes OpenAPI's {param}
		parts := strings.Split(p, "/")
		for i, s := range parts {
			if strings.HasPrefix(s, ":") {
				parts[i] = "{" + s[1:] + "}"
			}
		}
		served[r.Method+" "+strings.Join(parts, "/")] = true
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("served but not in openapi.yaml: %s", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("in openapi.yaml but not served: %s", r)
		}
	}
}
