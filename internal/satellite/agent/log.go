package agent

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"
)

// NewLogger returns the satellite's JSON (or text) logger, whose output
// never carries one of secrets. The code logs no secret to begin with
// (config.Secret redacts itself); this is the second line of defence
// against a secret that reaches a log line inside someone else's error
// message — a Jira proxy echoing a header, a driver quoting a URL.
func NewLogger(w io.Writer, level slog.Level, format string, secrets []string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	var pairs []string
	for _, s := range secrets {
		// Very short values would blank out ordinary words; config
		// refuses no secret for being short, but neither is a 3-letter
		// password worth scrubbing every "abc" for.
		if len(s) >= 4 {
			pairs = append(pairs, s, "[redacted]")
		}
	}
	if len(pairs) == 0 {
		return slog.New(h)
	}
	return slog.New(&redactHandler{inner: h, r: strings.NewReplacer(pairs...)})
}

type redactHandler struct {
	inner slog.Handler
	r     *strings.Replacer
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Replace(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &redactHandler{inner: h.inner.WithAttrs(clean), r: h.r}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{inner: h.inner.WithGroup(name), r: h.r}
}

// attr scrubs an attribute's value, resolved (LogValuers) and rendered
// as text where it is not a plain scalar.
func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Replace(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = h.attr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.Replace(err.Error()))
		}
		// Rendered like the JSON handler would, then scrubbed.
		var b strings.Builder
		th := slog.NewJSONHandler(&b, nil)
		r := slog.NewRecord(time.Time{}, 0, "", 0)
		r.AddAttrs(slog.Any("v", v.Any()))
		if th.Handle(context.Background(), r) == nil {
			s := b.String()
			if clean := h.r.Replace(s); clean != s {
				return slog.String(a.Key, "[redacted: held a secret]")
			}
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
