// Package descriptor renders the Connect app descriptor from the committed
// template. The template is valid JSON with {{placeholders}} inside strings,
// so editors and linters can check it; values are JSON-escaped on the way in.
package descriptor

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Params are the values the descriptor depends on.
type Params struct {
	BaseURL string // the app's public URL without a trailing slash
	Key     string
	Name    string
}

// Descriptor is a rendered descriptor plus what the router needs from it.
type Descriptor struct {
	JSON      []byte
	Lifecycle map[string]string // event -> path relative to BaseURL
	Webhooks  map[string]string // event -> path
	Pages     map[string]string // module key -> path
}

// Render fills the template and checks that the result is a well-formed
// descriptor whose routes the service serves.
func Render(tmpl []byte, p Params) (*Descriptor, error) {
	esc := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b[1 : len(b)-1])
	}
	out := strings.NewReplacer(
		"{{baseUrl}}", esc(p.BaseURL),
		"{{key}}", esc(p.Key),
		"{{name}}", esc(p.Name),
	).Replace(string(tmpl))

	var parsed struct {
		Lifecycle map[string]string `json:"lifecycle"`
		Modules   struct {
			PostInstallPage *struct{ Key, URL string }    `json:"postInstallPage"`
			ConfigurePage   *struct{ Key, URL string }    `json:"configurePage"`
			Webhooks        []struct{ Event, URL string } `json:"webhooks"`
		} `json:"modules"`
	}
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		return nil, fmt.Errorf("descriptor template: %w", err)
	}
	d := &Descriptor{JSON: []byte(out), Lifecycle: parsed.Lifecycle, Webhooks: map[string]string{}, Pages: map[string]string{}}
	for _, w := range parsed.Modules.Webhooks {
		d.Webhooks[w.Event] = w.URL
	}
	for _, pg := range []*struct{ Key, URL string }{parsed.Modules.PostInstallPage, parsed.Modules.ConfigurePage} {
		if pg != nil {
			d.Pages[pg.Key] = pg.URL
		}
	}
	for _, ev := range []string{"installed", "uninstalled", "enabled", "disabled"} {
		if d.Lifecycle[ev] == "" {
			return nil, fmt.Errorf("descriptor template: lifecycle %q missing", ev)
		}
	}
	return d, nil
}
