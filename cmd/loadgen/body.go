package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// issueUpdatedBody returns a jira:issue_updated webhook as Jira Cloud sends
// it (issue with its usual fields, the user, a changelog), with the
// description padded so the body is about size bytes.
func issueUpdatedBody(siteURL string, i, size int) []byte {
	build := func(description string) []byte {
		b, err := json.Marshal(issueEvent(siteURL, i, description))
		if err != nil {
			panic(err) // only maps, strings and numbers
		}
		return b
	}
	b := build("")
	if pad := size - len(b); pad > 0 {
		b = build(lorem(pad))
	}
	return b
}

func issueEvent(site string, i int, description string) map[string]any {
	id := 10000 + i
	key := fmt.Sprintf("SEI-%d", 100+i)
	ts := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	user := map[string]any{
		"self":        site + "/rest/api/2/user?accountId=557058:f0e3a1b2-4c5d-6e7f-8091-a2b3c4d5e6f7",
		"accountId":   "557058:f0e3a1b2-4c5d-6e7f-8091-a2b3c4d5e6f7",
		"displayName": "Ada Lovelace",
		"active":      true,
		"timeZone":    "Europe/London",
		"accountType": "atlassian",
		"avatarUrls": map[string]string{
			"48x48": "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/initials/AL-5.png",
		},
	}
	status := func(name, id, cat string) map[string]any {
		return map[string]any{
			"self": site + "/rest/api/2/status/" + id, "name": name, "id": id,
			"statusCategory": map[string]any{"id": 4, "key": cat, "name": "In Progress", "colorName": "yellow"},
		}
	}
	return map[string]any{
		"timestamp":             ts.UnixMilli(),
		"webhookEvent":          "jira:issue_updated",
		"issue_event_type_name": "issue_generic",
		"user":                  user,
		"issue": map[string]any{
			"id":   fmt.Sprint(id),
			"self": fmt.Sprintf("%s/rest/api/2/issue/%d", site, id),
			"key":  key,
			"fields": map[string]any{
				"summary":     "Ingest status history for reopened issues",
				"description": description,
				"issuetype": map[string]any{"self": site + "/rest/api/2/issuetype/10001", "id": "10001",
					"name": "Story", "subtask": false, "hierarchyLevel": 0},
				"project": map[string]any{"self": site + "/rest/api/2/project/10000", "id": "10000",
					"key": "SEI", "name": "SEI Platform", "projectTypeKey": "software"},
				"status":                   status("In Progress", "3", "indeterminate"),
				"priority":                 map[string]any{"self": site + "/rest/api/2/priority/3", "id": "3", "name": "Medium"},
				"assignee":                 user,
				"reporter":                 user,
				"creator":                  user,
				"labels":                   []string{"ingestion", "backend"},
				"components":               []map[string]string{{"id": "10020", "name": "connector"}},
				"fixVersions":              []any{},
				"created":                  ts.Add(-72 * time.Hour).Format("2006-01-02T15:04:05.000-0700"),
				"updated":                  ts.Format("2006-01-02T15:04:05.000-0700"),
				"statuscategorychangedate": ts.Format("2006-01-02T15:04:05.000-0700"),
				"duedate":                  nil,
				"resolution":               nil,
				"timeestimate":             nil,
				"customfield_10016":        5.0, // story points
				"customfield_10020":        []map[string]any{{"id": 42, "name": "SEI Sprint 12", "state": "active", "boardId": 3}},
				"customfield_10014":        nil,
			},
		},
		"changelog": map[string]any{
			"id": fmt.Sprint(20000 + i),
			"items": []map[string]any{{
				"field": "status", "fieldtype": "jira", "fieldId": "status",
				"from": "10000", "fromString": "To Do", "to": "3", "toString": "In Progress",
			}},
		},
	}
}

const loremText = "The ingestion worker reads the issue, its status history and its comments, " +
	"and writes them to SEI in one transaction so that a retry never duplicates a transition. "

func lorem(n int) string {
	return strings.Repeat(loremText, n/len(loremText)+1)[:n]
}
