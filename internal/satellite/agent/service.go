package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/satellite/config"
	"github.com/sei-io/jira-connect/internal/satellite/wire"
)

// service calls the SEI service's satellite endpoints (wire's protocol)
// with the tenant's API key.
type service struct {
	base      string // satellite.url, ending in /api
	key       config.Secret
	http      *http.Client
	userAgent string
}

// defaultServiceTimeout bounds one push: a batch of 8 MiB over a slow
// link, and the service writing it.
const defaultServiceTimeout = 2 * time.Minute

// ServiceError is a push or heartbeat the service did not accept.
type ServiceError struct {
	Status     int // 0 when no answer came
	Code       string
	Message    string
	Fields     map[string]string
	RetryAfter time.Duration
	Err        error // the network error when no answer came
}

func (e *ServiceError) Error() string {
	if e.Status == 0 {
		return "SEI service unreachable: " + e.Err.Error()
	}
	s := fmt.Sprintf("SEI service answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if len(e.Fields) > 0 {
		raw, _ := json.Marshal(e.Fields)
		s += " " + string(raw)
	}
	return s
}

func (e *ServiceError) Unwrap() error { return e.Err }

// Refused is a 401 or 403: the API key is wrong, revoked or not allowed.
func (e *ServiceError) Refused() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// advice says in plain words what a person can do about the failure.
func (e *ServiceError) advice(tenant, integrationID string) string {
	switch {
	case e.Refused():
		return fmt.Sprintf("the SEI service refused the satellite's API key (%d): check satellite.api_key in satellite.yml — it must be an active API key of tenant %s; nothing is lost, the satellite keeps its data and retries", e.Status, tenant)
	case e.Status == http.StatusNotFound:
		return fmt.Sprintf("the SEI service knows no integration %s for this API key's tenant: check integrations[].id and satellite.api_key in satellite.yml", integrationID)
	case e.Status == http.StatusConflict:
		return fmt.Sprintf("the SEI service refused the push for integration %s: %s", integrationID, e.Message)
	case e.Status == http.StatusTooManyRequests:
		return "the SEI service asked the satellite to slow down (429)"
	case e.Status >= 500:
		return fmt.Sprintf("the SEI service failed (%d); retrying", e.Status)
	case e.Status == 0:
		return "the SEI service could not be reached (" + e.Err.Error() + "): check satellite.url and that this host may connect to it (proxy, firewall)"
	}
	return "the SEI service refused the push: " + e.Error()
}

// pushBatch sends one batch, gzip-compressed.
func (s *service) pushBatch(ctx context.Context, integrationID string, b *wire.Batch) (*wire.BatchResult, error) {
	var res wire.BatchResult
	if err := s.post(ctx, wire.BatchesPath(url.PathEscape(integrationID)), b, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// heartbeat sends one heartbeat.
func (s *service) heartbeat(ctx context.Context, integrationID string, hb *wire.Heartbeat) error {
	var res wire.HeartbeatResult
	return s.post(ctx, wire.HeartbeatPath(url.PathEscape(integrationID)), hb, &res)
}

func (s *service) post(ctx context.Context, path string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding the push: %w", err)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write(raw)
	if err := w.Close(); err != nil {
		return fmt.Errorf("compressing the push: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(gz.Bytes()))
	if err != nil {
		return fmt.Errorf("building the push: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set("Authorization", "Bearer "+s.key.Reveal())
	resp, err := s.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &ServiceError{Err: scrubURL(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		e := &ServiceError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
		var body struct {
			Error struct {
				Code    string            `json:"code"`
				Message string            `json:"message"`
				Fields  map[string]string `json:"fields"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &body) == nil {
			e.Code, e.Message, e.Fields = body.Error.Code, body.Error.Message, body.Error.Fields
		}
		return e
	}
	if err != nil {
		return &ServiceError{Status: resp.StatusCode, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		// The service stored the push and answered 2xx; the answer is
		// only informative, so an odd one does not make it a failure.
		return nil
	}
	return nil
}

// scrubURL keeps a network error without the request URL's query (none is
// sent, but the habit costs nothing) — the API key travels in a header,
// never in the URL.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redactURL(ue.URL), ue.Err)
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// retryAfter reads a Retry-After in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
