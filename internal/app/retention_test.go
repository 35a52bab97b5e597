package app

import (
	"context"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

// TestRetention: an uninstall keeps the ingested data until the retention
// ends, then the purge removes it; deleting an integration removes its data
// at once.
func TestRetention(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		began := time.Now()
		s, key, itID := h.linkedSite(jirasim.DefaultGenSpec(100), nil)
		h.waitSync(key, itID, began, time.Minute)
		count := func() int64 {
			n, err := db.CountIngested(context.Background(), itID)
			if err != nil {
				t.Fatal(err)
			}
			var hygiene int64 // the report's rows go with their issues too
			if err := db.Gorm.Table("hygiene_issues").Where("integration_id = ?", itID).Count(&hygiene).Error; err != nil {
				t.Fatal(err)
			}
			return n["issues"] + n["transitions"] + n["comments"] + n["users"] + hygiene
		}
		if count() == 0 {
			t.Fatal("nothing ingested")
		}
		h.expect(s.Uninstall(ctx))(204)
		if n, err := db.PurgeExpired(ctx, time.Now()); err != nil || n != 0 || count() == 0 {
			t.Fatalf("purged within the retention: %d %v", n, err)
		}
		if n, err := db.PurgeExpired(ctx, time.Now().Add(721*time.Hour)); err != nil || n != 1 || count() != 0 {
			t.Fatalf("after the retention: purged %d (%v), %d rows left", n, err, count())
		}
		if _, got := h.api("GET", "/integrations/"+itID, key, nil); got["status"] != "uninstalled" {
			t.Errorf("integration after purge: %v", got["status"])
		}

		// Deletion removes the data at once.
		h2 := h.installed()
		remember(h2.SharedSecret)
		if err := h2.Generate(7, jirasim.DefaultGenSpec(50)); err != nil {
			t.Fatal(err)
		}
		_, it2 := h.api("POST", "/integrations", key, map[string]any{"name": "second"})
		h.api("POST", "/integrations/"+id(it2)+"/connect-key", key, map[string]any{"key": h.connectKey(h2)})
		began = time.Now()
		h.api("POST", "/integrations/"+id(it2)+"/validate", key, nil)
		h.waitSync(key, id(it2), began, time.Minute)
		if n, _ := db.CountIngested(ctx, id(it2)); n["issues"] != 50 {
			t.Fatalf("second site: %v", n)
		}
		if st, _ := h.api("DELETE", "/integrations/"+id(it2), key, nil); st != 204 {
			t.Fatalf("delete: %d", st)
		}
		if n, _ := db.CountIngested(ctx, id(it2)); n["issues"]+n["users"]+n["transitions"]+n["comments"] != 0 {
			t.Errorf("data left after delete: %v", n)
		}
		var hygiene int64
		if err := db.Gorm.Table("hygiene_issues").Where("integration_id = ?", id(it2)).Count(&hygiene).Error; err != nil || hygiene != 0 {
			t.Errorf("hygiene rows left after delete: %d %v", hygiene, err)
		}
	})
}
