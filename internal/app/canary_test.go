package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

const canary = "CANARY-e7b1c0de"

// allText returns every value of every table, as text.
func allText(t *testing.T, db *store.DB) string {
	t.Helper()
	var tables []string
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if db.Dialect() == store.DialectPostgres {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
	}
	if err := db.Gorm.Raw(q).Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, table := range tables {
		rows, err := db.Gorm.Raw(`SELECT * FROM "` + table + `"`).Rows()
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				fmt.Fprintf(&sb, "%s=%v\n", table, v)
			}
		}
		rows.Close()
	}
	return sb.String()
}

// TestCanaryNeverStored plants a canary in every excluded field (summary,
// description, a custom field, comment bodies, and through edits the
// changelog values of those fields), syncs, delivers the webhooks, and
// asserts the canary is in no table and no log line, while the same data
// without exclusions does arrive (so the test can fail).
func TestCanaryNeverStored(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		custom := fmt.Sprintf("customfield_%d", jirasim.CustomFieldBase)
		began := time.Now()
		spec := jirasim.DefaultGenSpec(200)
		s, key, itID := h.linkedSite(spec, map[string]any{"excluded_fields": []string{"summary", "description", "comments", custom}})
		h.waitSync(key, itID, began, time.Minute)

		var events []*jirasim.Event
		for _, id := range []string{"10001", "10002", "10003"} {
			ev, err := s.UpdateIssue(id, func(f map[string]any) {
				f["summary"] = "summary " + canary
				f["description"] = map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "paragraph",
					"content": []any{map[string]any{"type": "text", "text": "description " + canary}}}}}
				f[custom] = "custom " + canary
			})
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
			ev, err = s.AddComment(id, "", "comment "+canary)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
			ev, err = s.UpdateIssue(id, func(f map[string]any) { f["summary"] = "second " + canary })
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		for _, ev := range events {
			h.expect(s.Deliver(ctx, ev))(204)
		}
		began = time.Now()
		h.requestSync(key, itID, "incremental")
		h.waitSync(key, itID, began, time.Minute)
		deadline := time.Now().Add(30 * time.Second)
		for {
			var pending int64
			db.Gorm.Model(&store.WebhookEvent{}).Where("processed_at IS NULL").Count(&pending)
			if pending == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}

		dump := allText(t, db)
		if strings.Contains(dump, canary) {
			for _, line := range strings.Split(dump, "\n") {
				if strings.Contains(line, canary) {
					t.Errorf("canary stored: %.200s", line)
				}
			}
		}
		if strings.Contains(h.logs.String(), canary) {
			t.Errorf("canary logged")
		}
		// The issues themselves did arrive, with their non-excluded data.
		_, one := h.api("GET", "/integrations/"+itID+"/issues/"+keyOf(t, db, itID, 10001), key, nil)
		if one["summary"] != nil || one["description"] != nil || one["status"] == "" {
			t.Errorf("issue 10001 = %v", one)
		}
		if comments, _ := one["comments"].([]any); len(comments) != 0 {
			t.Errorf("comments are excluded but %d were stored", len(comments))
		}

		// Control: the same site through an integration without exclusions
		// stores the canary, so the scan above can see it.
		_, key2 := h.newTenant("Control")
		_, it2 := h.api("POST", "/integrations", key2, map[string]any{"name": "control"})
		h.api("DELETE", "/integrations/"+itID+"/connect-key", key, nil)
		if st, out := h.api("POST", "/integrations/"+id(it2)+"/connect-key", key2, map[string]any{"key": h.connectKey(s)}); st != 200 {
			t.Fatalf("relink: %d %v", st, out)
		}
		began = time.Now()
		h.api("POST", "/integrations/"+id(it2)+"/validate", key2, nil)
		h.waitSync(key2, id(it2), began, time.Minute)
		if !strings.Contains(allText(t, db), canary) {
			t.Errorf("control integration did not store the canary: the scan is blind")
		}
	})
}
