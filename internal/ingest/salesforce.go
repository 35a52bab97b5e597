package ingest

import (
	"context"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/sei-io/jira-connect/internal/store"
)

// Salesforce case references, as an integration's salesforce_field holds
// them. The field's text is cut into runs of ASCII letters and digits, so
// "Case #00001234", "00001234, 00001235" and a Lightning URL
// (…/lightning/r/Case/5003000000D8cuIAAR/view) all work; a run is kept when
// it is
//
//   - a Case record id: 15 or 18 letters and digits starting with "500",
//     the key prefix of the Case object. An 18-character id's last three
//     characters encode the case of the first fifteen, so it is checked
//     against them and accepted in any letter case; a 15-character id is
//     case-sensitive as written. Both are stored in the 18-character form,
//     so the two spellings of one record are one link.
//   - a case number: 4 to 10 digits (Salesforce's CaseNumber auto-number is
//     8 digits, "00001234", by default), kept as written, zeros included.
//
// Every other run is ignored: words, Jira option ids, ids of other
// Salesforce objects. Numbers of fewer than 4 digits are too likely to be
// something else ("P1", "v2") to link on.
const (
	caseIDPrefix      = "500"
	minCaseNumber     = 4
	maxCaseNumber     = 10
	maxCasesPerIssue  = 50
	salesforceIDChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
)

// SalesforceLinks is the store.SalesforceExtractor of the write path: the
// cases the issue's field names, without integration and issue ids (the
// store sets them). The field may be one of the columns the model extracts
// (summary, description, labels) or any field kept in the other-fields
// JSON.
func SalesforceLinks(field string, is *store.JiraIssue) []store.SalesforceLink {
	switch field {
	case "":
		return nil
	case "summary":
		return salesforceRefs(textOf(is.Summary))
	case "description":
		return salesforceRefs(textOf(is.Description))
	case "labels":
		return SalesforceCases(json.RawMessage(is.Labels))
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(is.Fields), &fields) != nil {
		return nil
	}
	return SalesforceCases(fields[field])
}

func textOf(s *string) []string {
	if s == nil {
		return nil
	}
	return []string{*s}
}

// SalesforceCases extracts case references from a field value as Jira
// returns it: a string, a number, an option ({"value": …}), a rich-text
// document (ADF), or an array of those. Option and user ids, URLs to Jira
// ("self") and other object members are not read: "id": "10045" is not a
// case number.
func SalesforceCases(raw json.RawMessage) []store.SalesforceLink {
	var texts []string
	collectTexts(raw, &texts, 0)
	return salesforceRefs(texts)
}

func collectTexts(raw json.RawMessage, out *[]string, depth int) {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	if len(raw) == 0 || depth > 4 {
		return
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			*out = append(*out, s)
		}
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) == nil {
			for _, it := range items {
				collectTexts(it, out, depth+1)
			}
		}
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return
		}
		if string(obj["type"]) == `"doc"` { // a rich-text field (ADF)
			*out = append(*out, ADFText(raw))
			return
		}
		for _, k := range []string{"value", "name", "child"} {
			if v, ok := obj[k]; ok {
				collectTexts(v, out, depth+1)
			}
		}
	case 'n', 't', 'f': // null, true, false
	default: // a number: its digits as written
		*out = append(*out, string(raw))
	}
}

// salesforceRefs finds the references in texts, first appearance first,
// each once.
func salesforceRefs(texts []string) []store.SalesforceLink {
	var out []store.SalesforceLink
	seen := map[string]bool{}
	for _, t := range texts {
		for _, tok := range alnumRuns(t) {
			ref, kind := salesforceRef(tok)
			if ref == "" || seen[ref] {
				continue
			}
			seen[ref] = true
			out = append(out, store.SalesforceLink{CaseRef: ref, Kind: kind})
			if len(out) == maxCasesPerIssue {
				return out
			}
		}
	}
	return out
}

func alnumRuns(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !isAlnum(r) })
}

func isAlnum(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// salesforceRef classifies one run of letters and digits ("" when it is
// not a case reference).
func salesforceRef(tok string) (ref, kind string) {
	switch {
	case allDigits(tok) && len(tok) >= minCaseNumber && len(tok) <= maxCaseNumber:
		return tok, store.SalesforceCaseNumber
	case len(tok) == 15 && strings.HasPrefix(tok, caseIDPrefix):
		return tok + salesforceSuffix(tok), store.SalesforceCaseID
	case len(tok) == 18:
		if id, ok := canonicalSalesforceID(tok); ok && strings.HasPrefix(id, caseIDPrefix) {
			return id, store.SalesforceCaseID
		}
	}
	return "", ""
}

// salesforceSuffix is the 3-character checksum Salesforce appends to a
// 15-character id: for each 5-character chunk, a bit per upper-case letter.
func salesforceSuffix(id15 string) string {
	var b [3]byte
	for chunk := range 3 {
		n := 0
		for j := range 5 {
			if c := id15[chunk*5+j]; c >= 'A' && c <= 'Z' {
				n |= 1 << j
			}
		}
		b[chunk] = salesforceIDChars[n]
	}
	return string(b[:])
}

// canonicalSalesforceID checks an 18-character id against its suffix and
// returns it with the letter case the suffix encodes. Salesforce treats
// 18-character ids case-insensitively, so an id whose case was lost (all
// upper or all lower case) is restored from the suffix; an id written in
// mixed case must agree with it, which catches most typos.
func canonicalSalesforceID(id string) (string, bool) {
	hasUpper, hasLower := false, false
	for i := range 15 {
		c := id[i]
		hasUpper = hasUpper || c >= 'A' && c <= 'Z'
		hasLower = hasLower || c >= 'a' && c <= 'z'
	}
	b := []byte(id)
	for chunk := range 3 {
		n := strings.IndexByte(salesforceIDChars, upper(b[15+chunk]))
		if n < 0 {
			return "", false
		}
		for j := range 5 {
			c := &b[chunk*5+j]
			isLetter := *c >= 'a' && *c <= 'z' || *c >= 'A' && *c <= 'Z'
			switch {
			case n&(1<<j) != 0 && !isLetter:
				return "", false
			case n&(1<<j) != 0:
				*c = upper(*c)
			case isLetter:
				*c = lower(*c)
			}
		}
		b[15+chunk] = salesforceIDChars[n]
	}
	out := string(b)
	if hasUpper && hasLower && out[:15] != id[:15] {
		return "", false
	}
	return out, true
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

// WithReportFields is the field list of a search: base plus the fields the
// integration's hygiene settings and Salesforce mapping read from the
// other-fields JSON (report settings, migration 00005), without the
// integration's excluded fields and without duplicates. Those fields reach
// the other-fields JSON only if the search asks for them.
func WithReportFields(ctx context.Context, db *store.DB, it *store.Integration, base []string) ([]string, error) {
	rs, err := db.GetReportSettings(ctx, it.ID)
	if err != nil {
		return nil, err
	}
	out := append([]string(nil), base...)
	seen := make(map[string]bool, len(base))
	for _, f := range base {
		seen[f] = true
	}
	ex := NewExclusions(it.ExcludedFields)
	for _, f := range rs.SearchFields() {
		if f != "" && !seen[f] && !ex.Field(f) {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out, nil
}
