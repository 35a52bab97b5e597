package hygiene

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Defaults of the built-in thresholds.
const (
	DefaultIdleDays                 = 30
	DefaultPoorDescriptionMinLength = 20
	DefaultResponseTimeGoalHours    = 24
	DefaultResolutionTimeGoalDays   = 30
	// MaxCustom is how many custom hygiene misses an integration may have.
	MaxCustom = 10
)

// Operators of custom hygiene misses. Each names the undesired state: an
// issue for which it holds is a miss.
const (
	OpMissing       = "missing"
	OpEquals        = "equals"
	OpNotEquals     = "not_equals"
	OpGreaterThan   = "greater_than"
	OpLessThan      = "less_than"
	OpContains      = "contains"
	OpNotContains   = "not_contains"
	OpOlderThanDays = "older_than_days"
)

var operators = []string{OpMissing, OpEquals, OpNotEquals, OpGreaterThan, OpLessThan, OpContains, OpNotContains, OpOlderThanDays}

// operatorsFor lists what applies to each kind, in the order messages
// name them.
var operatorsFor = map[string][]string{
	KindString:   {OpMissing, OpEquals, OpNotEquals, OpContains, OpNotContains},
	KindUser:     {OpMissing, OpEquals, OpNotEquals},
	KindNumber:   {OpMissing, OpEquals, OpNotEquals, OpGreaterThan, OpLessThan},
	KindDate:     {OpMissing, OpEquals, OpNotEquals, OpGreaterThan, OpLessThan, OpOlderThanDays},
	KindDateTime: {OpMissing, OpGreaterThan, OpLessThan, OpOlderThanDays},
	KindArray:    {OpMissing, OpContains, OpNotContains},
	KindOther:    {OpMissing},
}

// Settings are an integration's hygiene settings, as the API shows them.
type Settings struct {
	IdleDays                 int      `json:"idle_days"`
	PoorDescriptionMinLength int      `json:"poor_description_min_length"`
	ResponseTimeGoalHours    int      `json:"response_time_goal_hours"`
	ResolutionTimeGoalDays   int      `json:"resolution_time_goal_days"`
	CustomMisses             []Custom `json:"custom_misses"`
}

// Custom is a custom hygiene miss. Key, FieldName and FieldType are
// derived when it is saved.
type Custom struct {
	Key       string `json:"key"`
	Name      string `json:"name"`
	Field     string `json:"field"`
	FieldName string `json:"field_name"`
	FieldType string `json:"field_type"`
	Operator  string `json:"operator"`
	Value     any    `json:"value"`
}

// stored is the JSON kept in report_settings.hygiene: the settings plus,
// per custom miss, where its field is read (resolved once, when saved).
type stored struct {
	IdleDays                 int            `json:"idle_days"`
	PoorDescriptionMinLength int            `json:"poor_description_min_length"`
	ResponseTimeGoalHours    int            `json:"response_time_goal_hours"`
	ResolutionTimeGoalDays   int            `json:"resolution_time_goal_days"`
	Custom                   []storedCustom `json:"custom_misses"`
}

type storedCustom struct {
	Key      string `json:"key"`
	Name     string `json:"name"`
	Field    string `json:"field"`
	Operator string `json:"operator"`
	Value    any    `json:"value"`
	Source   source `json:"source"`
	// Slot is where hygiene_issues keeps the field's value (s<Slot>,
	// n<Slot>).
	Slot int `json:"slot"`
}

func defaults() stored {
	return stored{IdleDays: DefaultIdleDays, PoorDescriptionMinLength: DefaultPoorDescriptionMinLength,
		ResponseTimeGoalHours: DefaultResponseTimeGoalHours, ResolutionTimeGoalDays: DefaultResolutionTimeGoalDays}
}

func decodeStored(raw string) (stored, error) {
	st := defaults()
	if raw == "" || raw == "{}" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, apperr.Wrap(err, apperr.Internal, "unreadable hygiene settings")
	}
	return st, nil
}

func (st stored) view() *Settings {
	out := &Settings{IdleDays: st.IdleDays, PoorDescriptionMinLength: st.PoorDescriptionMinLength,
		ResponseTimeGoalHours: st.ResponseTimeGoalHours, ResolutionTimeGoalDays: st.ResolutionTimeGoalDays, CustomMisses: []Custom{}}
	for _, c := range st.Custom {
		out.CustomMisses = append(out.CustomMisses, Custom{Key: c.Key, Name: c.Name, Field: c.Field, FieldName: c.Source.Name,
			FieldType: c.Source.Kind, Operator: c.Operator, Value: c.Value})
	}
	return out
}

// Input is a PUT of the hygiene settings: it replaces them. Thresholds not
// given take their defaults. key, field_name and field_type of custom
// misses are accepted (so a GET's answer can be sent back) and ignored.
type Input struct {
	IdleDays                 *int          `json:"idle_days"`
	PoorDescriptionMinLength *int          `json:"poor_description_min_length"`
	ResponseTimeGoalHours    *int          `json:"response_time_goal_hours"`
	ResolutionTimeGoalDays   *int          `json:"resolution_time_goal_days"`
	CustomMisses             []CustomInput `json:"custom_misses"`
}

// CustomInput is one custom hygiene miss of a PUT.
type CustomInput struct {
	Name      string          `json:"name"`
	Field     string          `json:"field"`
	Operator  string          `json:"operator"`
	Value     json.RawMessage `json:"value"`
	Key       string          `json:"key"`
	FieldName string          `json:"field_name"`
	FieldType string          `json:"field_type"`
}

// Threshold limits: generous, but a typo of three extra zeros is refused.
var thresholdLimits = map[string][2]int{
	"idle_days":                   {1, 3650},
	"poor_description_min_length": {1, 10000},
	"response_time_goal_hours":    {1, 8760},
	"resolution_time_goal_days":   {1, 3650},
}

var fieldIDPattern = regexp.MustCompile(`^(customfield_[0-9]{1,10}|[a-z][a-zA-Z0-9_]{0,63})$`)

// Settings returns the integration's hygiene settings (the defaults until
// some are saved).
func (s *Service) Settings(ctx context.Context, tenantID, id string) (*Settings, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	rs, err := s.DB.GetReportSettings(ctx, it.ID)
	if err != nil {
		return nil, err
	}
	st, err := decodeStored(rs.Hygiene)
	if err != nil {
		return nil, err
	}
	return st.view(), nil
}

// SaveSettings validates and replaces the integration's hygiene settings.
// Custom misses are checked against the site's field list: the field must
// exist, the operator must apply to its type, and the value must fit both.
// Fields that ingestion did not request before are requested from the next
// sync on; a full sync is scheduled so that stored issues get them too.
func (s *Service) SaveSettings(ctx context.Context, tenantID, id string, in Input) (*Settings, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	st := defaults()
	f := map[string]string{}
	for name, p := range map[string]*int{"idle_days": in.IdleDays, "poor_description_min_length": in.PoorDescriptionMinLength,
		"response_time_goal_hours": in.ResponseTimeGoalHours, "resolution_time_goal_days": in.ResolutionTimeGoalDays} {
		if p == nil {
			continue
		}
		lim := thresholdLimits[name]
		if *p < lim[0] || *p > lim[1] {
			f[name] = fmt.Sprintf("must be an integer from %d to %d", lim[0], lim[1])
		}
	}
	if in.IdleDays != nil {
		st.IdleDays = *in.IdleDays
	}
	if in.PoorDescriptionMinLength != nil {
		st.PoorDescriptionMinLength = *in.PoorDescriptionMinLength
	}
	if in.ResponseTimeGoalHours != nil {
		st.ResponseTimeGoalHours = *in.ResponseTimeGoalHours
	}
	if in.ResolutionTimeGoalDays != nil {
		st.ResolutionTimeGoalDays = *in.ResolutionTimeGoalDays
	}
	if len(in.CustomMisses) > MaxCustom {
		f["custom_misses"] = fmt.Sprintf("has %d entries; at most %d are allowed", len(in.CustomMisses), MaxCustom)
	} else if len(in.CustomMisses) > 0 {
		fs, err := s.siteFields(ctx, it)
		if err != nil {
			return nil, err
		}
		keys := map[string]bool{}
		for _, b := range builtins {
			keys[b.key] = true
		}
		for i, ci := range in.CustomMisses {
			c, errs := validateCustom(ci, fs, it.Timezone)
			prefix := fmt.Sprintf("custom_misses[%d].", i)
			for k, v := range errs {
				f[prefix+k] = v
			}
			if c.Key != "" && keys[c.Key] {
				f[prefix+"name"] = fmt.Sprintf("gives the key %s, which another category has; choose another name", quote(c.Key))
			}
			if c.Key != "" {
				keys[c.Key] = true
			}
			st.Custom = append(st.Custom, c)
		}
	}
	if len(f) > 0 {
		return nil, apperr.Validation(f)
	}
	prev, err := s.DB.GetReportSettings(ctx, it.ID)
	if err != nil {
		return nil, err
	}
	slots := assignSlots(prev.Slots, st.Custom)
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "cannot encode hygiene settings")
	}
	if err := s.DB.SaveHygieneSettings(ctx, it.ID, string(raw), slots); err != nil {
		return nil, err
	}
	next := store.ReportSettings{Slots: slots, SalesforceField: prev.SalesforceField}
	s.resyncFor(ctx, it, prev.SearchFields(), next.SearchFields())
	return st.view(), nil
}

// assignSlots gives each field that custom misses read a slot of
// hygiene_issues, and sets each miss's Slot. A field keeps the slot it had,
// so saving settings that keep their fields recomputes nothing.
func assignSlots(prev []store.HygieneSlot, customs []storedCustom) []store.HygieneSlot {
	spec := func(c storedCustom) store.HygieneSlot {
		return store.HygieneSlot{Field: c.Field, Column: c.Source.Column, Kind: c.Source.Kind}
	}
	var want []store.HygieneSlot
	for _, c := range customs {
		if sp := spec(c); !slices.Contains(want, sp) {
			want = append(want, sp)
		}
	}
	out := make([]store.HygieneSlot, store.HygieneSlots)
	placed := map[store.HygieneSlot]bool{}
	for k, p := range prev {
		if k < len(out) && slices.Contains(want, p) && !placed[p] {
			out[k], placed[p] = p, true
		}
	}
	for _, w := range want {
		if placed[w] {
			continue
		}
		k := slices.IndexFunc(out, func(s store.HygieneSlot) bool { return s.Field == "" })
		out[k], placed[w] = w, true
	}
	for i := range customs {
		customs[i].Slot = slices.Index(out, spec(customs[i]))
	}
	for len(out) > 0 && out[len(out)-1].Field == "" {
		out = out[:len(out)-1]
	}
	return out
}

// resyncFor schedules a full sync when settings read a field that earlier
// syncs did not request, so stored issues get its values. Until it ends, a
// custom miss on that field sees the field as missing on issues not synced
// since (README, "Issue hygiene").
func (s *Service) resyncFor(ctx context.Context, it *store.Integration, before, after []string) {
	for _, f := range after {
		if !slices.Contains(before, f) {
			s.fullSync(ctx, it, "a field to fetch was added")
			return
		}
	}
}

// fullSync has every issue read again. The request is recorded before the
// enqueue: a sync already waiting or running makes the enqueue a no-op,
// whatever its mode, and then that sync runs full (waiting) or runs again,
// full, when it ends (running); see store.RequestFullSync.
func (s *Service) fullSync(ctx context.Context, it *store.Integration, why string) {
	if s.Queue == nil || it.Status != "connected" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.DB.RequestFullSync(ctx, it.ID); err != nil {
		s.log().WarnContext(ctx, "full sync not requested", "integration_id", it.ID, "reason", why, "error", err.Error())
		return
	}
	if _, err := s.Queue.EnqueueSync(ctx, it.ID, "full"); err != nil {
		s.log().WarnContext(ctx, "full sync not scheduled", "integration_id", it.ID, "reason", why, "error", err.Error())
	}
}

// validateCustom checks one custom miss and resolves its field; errors are
// keyed by the input's member names.
func validateCustom(ci CustomInput, fs *fieldSet, tz string) (storedCustom, map[string]string) {
	errs := map[string]string{}
	c := storedCustom{Name: strings.TrimSpace(ci.Name), Field: strings.TrimSpace(ci.Field), Operator: ci.Operator}
	if c.Name == "" || utf8.RuneCountInString(c.Name) > 100 {
		errs["name"] = "is required (at most 100 characters)"
	} else if c.Key = slug(c.Name); c.Key == "" {
		errs["name"] = "needs a letter or a digit"
	}
	if !slices.Contains(operators, c.Operator) {
		errs["operator"] = "must be one of " + strings.Join(operators, ", ")
	}
	src, ok := source{}, false
	switch {
	case c.Field == "":
		errs["field"] = "is required: a Jira field id such as duedate or customfield_10010"
	case !fieldIDPattern.MatchString(c.Field):
		errs["field"] = "is not a Jira field id such as duedate or customfield_10010"
	default:
		if src, ok = fs.resolve(c.Field); !ok {
			errs["field"] = fs.unknownField(c.Field)
		}
	}
	c.Source = src
	if !ok || errs["operator"] != "" {
		return c, errs
	}
	allowed := operatorsFor[src.Kind]
	if !slices.Contains(allowed, c.Operator) {
		errs["operator"] = fmt.Sprintf("%s does not apply to %s (%s), a %s field: use %s", c.Operator, src.Name, c.Field, src.Kind,
			strings.Join(allowed, ", "))
		return c, errs
	}
	v, msg := checkValue(c.Operator, src.Kind, ci.Value, tz)
	if msg != "" {
		errs["value"] = msg
	}
	c.Value = v
	return c, errs
}

// checkValue validates a custom miss's value for its operator and kind and
// returns it in its stored form: nil (missing), a float64 (numbers,
// older_than_days), or a string (text, yyyy-mm-dd, RFC 3339).
func checkValue(op, kind string, raw json.RawMessage, tz string) (any, string) {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	absent := len(raw) == 0 || string(raw) == "null"
	if op == OpMissing {
		if !absent {
			return nil, "must be absent or null for missing"
		}
		return nil, ""
	}
	if absent {
		return nil, "is required for " + op
	}
	var str string
	isStr := json.Unmarshal(raw, &str) == nil
	var num float64
	isNum := !isStr && json.Unmarshal(raw, &num) == nil
	switch {
	case op == OpOlderThanDays:
		if !isNum || num != math.Trunc(num) || num < 0 || num > 36500 {
			return nil, "must be a whole number of days from 0 to 36500"
		}
		return num, ""
	case kind == KindNumber:
		if isStr {
			if n, err := strconv.ParseFloat(strings.TrimSpace(str), 64); err == nil {
				num, isNum = n, true
			}
		}
		if !isNum || math.IsInf(num, 0) || math.IsNaN(num) {
			return nil, "must be a number for a number field"
		}
		return num, ""
	case kind == KindDate:
		if !isStr {
			return nil, "must be a date such as 2026-01-31"
		}
		if _, err := time.Parse(time.DateOnly, str); err != nil {
			return nil, "must be a date such as 2026-01-31"
		}
		return str, ""
	case kind == KindDateTime:
		if !isStr {
			return nil, "must be a date (2026-01-31, midnight in the integration's time zone) or an RFC 3339 time"
		}
		if _, err := parseInstant(str, tz); err != nil {
			return nil, "must be a date (2026-01-31, midnight in the integration's time zone) or an RFC 3339 time"
		}
		return str, ""
	default: // string, user, array: compared as text
		if isNum {
			str, isStr = strconv.FormatFloat(num, 'f', -1, 64), true
		}
		if !isStr || str == "" || utf8.RuneCountInString(str) > 1000 {
			return nil, "must be a non-empty text of at most 1000 characters"
		}
		return str, ""
	}
}

// parseInstant reads a date (midnight in tz) or an RFC 3339 time.
func parseInstant(s, tz string) (time.Time, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	if d, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return d, nil
	}
	return time.Parse(time.RFC3339, s)
}

// slug makes a category key of a name: lower-case letters and digits, any
// other run of characters as one "_". Letters of every script are kept.
func slug(name string) string {
	var b strings.Builder
	pending := false
	for _, r := range strings.ToLower(name) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if pending && b.Len() > 0 {
				b.WriteByte('_')
			}
			pending = false
			b.WriteRune(r)
			continue
		}
		pending = true
	}
	s := b.String()
	for utf8.RuneCountInString(s) > 60 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.TrimSuffix(s, "_")
}
