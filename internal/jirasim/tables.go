package jirasim

// The fixed vocabulary of a simulated site: workflow, issue types,
// priorities, system fields. Ids follow a fresh Jira Cloud company-managed
// software project.

type statusDef struct {
	id, name        string
	catID           int
	catKey, catName string
	color           string
}

var statuses = []statusDef{
	{"10000", "To Do", 2, "new", "To Do", "blue-gray"},
	{"3", "In Progress", 4, "indeterminate", "In Progress", "yellow"},
	{"10001", "In Review", 4, "indeterminate", "In Progress", "yellow"},
	{"10002", "Done", 3, "done", "Done", "green"},
}

const (
	stToDo = iota
	stInProgress
	stInReview
	stDone
)

// workflow lists the transitions out of each status with their weights:
// mostly forward, sometimes back, now and then a reopen.
var workflow = [][]struct{ to, weight int }{
	stToDo:       {{stInProgress, 9}, {stDone, 1}},
	stInProgress: {{stInReview, 6}, {stToDo, 1}, {stDone, 3}},
	stInReview:   {{stDone, 6}, {stInProgress, 4}},
	stDone:       {{stToDo, 1}, {stInProgress, 2}},
}

func statusByName(name string) (int, bool) {
	for i, s := range statuses {
		if s.name == name || s.id == name {
			return i, true
		}
	}
	return 0, false
}

type issueTypeDef struct {
	id, name  string
	subtask   bool
	hierarchy int
	weight    int
}

var issueTypes = []issueTypeDef{
	{"10000", "Epic", false, 1, 3},
	{"10001", "Story", false, 0, 40},
	{"10002", "Task", false, 0, 27},
	{"10003", "Bug", false, 0, 20},
	{"10004", "Subtask", true, -1, 10},
}

const (
	itEpic = iota
	itStory
	itTask
	itBug
	itSubtask
)

var priorities = []struct{ id, name string }{
	{"1", "Highest"}, {"2", "High"}, {"3", "Medium"}, {"4", "Low"}, {"5", "Lowest"},
}

func priorityByName(name string) (int, bool) {
	for i, p := range priorities {
		if p.name == name || p.id == name {
			return i, true
		}
	}
	return 0, false
}

// Ids of the custom fields Jira Cloud has on every site.
const (
	FieldSprint      = "customfield_10020"
	FieldStoryPoints = "customfield_10016"
	// CustomFieldBase is the id of the first generated custom field
	// (customfield_10100); the others follow.
	CustomFieldBase = 10100
)

type fieldDef struct {
	id, name  string
	custom    bool
	navigable bool
	schema    map[string]any
}

// systemFields are the fields of /rest/api/3/field that generated issues
// carry. "comment" is not navigable, as in Jira: *navigable leaves it out.
var systemFields = []fieldDef{
	{"summary", "Summary", false, true, map[string]any{"type": "string", "system": "summary"}},
	{"description", "Description", false, true, map[string]any{"type": "string", "system": "description"}},
	{"issuetype", "Issue Type", false, true, map[string]any{"type": "issuetype", "system": "issuetype"}},
	{"project", "Project", false, true, map[string]any{"type": "project", "system": "project"}},
	{"status", "Status", false, true, map[string]any{"type": "status", "system": "status"}},
	{"priority", "Priority", false, true, map[string]any{"type": "priority", "system": "priority"}},
	{"assignee", "Assignee", false, true, map[string]any{"type": "user", "system": "assignee"}},
	{"reporter", "Reporter", false, true, map[string]any{"type": "user", "system": "reporter"}},
	{"creator", "Creator", false, true, map[string]any{"type": "user", "system": "creator"}},
	{"created", "Created", false, true, map[string]any{"type": "datetime", "system": "created"}},
	{"updated", "Updated", false, true, map[string]any{"type": "datetime", "system": "updated"}},
	{"resolution", "Resolution", false, true, map[string]any{"type": "resolution", "system": "resolution"}},
	{"resolutiondate", "Resolved", false, true, map[string]any{"type": "datetime", "system": "resolutiondate"}},
	{"statuscategorychangedate", "Status Category Changed", false, true, map[string]any{"type": "datetime", "system": "statuscategorychangedate"}},
	{"duedate", "Due date", false, true, map[string]any{"type": "date", "system": "duedate"}},
	{"components", "Components", false, true, map[string]any{"type": "array", "items": "component", "system": "components"}},
	{"labels", "Labels", false, true, map[string]any{"type": "array", "items": "string", "system": "labels"}},
	{"fixVersions", "Fix versions", false, true, map[string]any{"type": "array", "items": "version", "system": "fixVersions"}},
	{"parent", "Parent", false, true, map[string]any{"type": "issuelink", "system": "parent"}},
	{"comment", "Comment", false, false, map[string]any{"type": "comments-page", "system": "comment"}},
	{FieldSprint, "Sprint", true, true, map[string]any{"type": "array", "items": "json", "custom": "com.pyxis.greenhopper.jira:gh-sprint", "customId": 10020}},
	{FieldStoryPoints, "Story point estimate", true, true, map[string]any{"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float", "customId": 10016}},
}

// customKinds are the shapes of generated custom fields, in turn.
var customKinds = []struct {
	name   string
	schema map[string]any
}{
	{"Team notes", map[string]any{"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield"}},
	{"Effort", map[string]any{"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float"}},
	{"Severity", map[string]any{"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select"}},
	{"Target date", map[string]any{"type": "date", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:datepicker"}},
	{"Tags", map[string]any{"type": "array", "items": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:labels"}},
	{"Reviewer", map[string]any{"type": "user", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:userpicker"}},
	{"Deployed at", map[string]any{"type": "datetime", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:datetime"}},
	{"Platforms", map[string]any{"type": "array", "items": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:multiselect"}},
}

var optionValues = []string{"Critical", "Major", "Minor", "Trivial", "Web", "iOS", "Android", "Desktop"}

var projectNames = []string{
	"Platform", "Mobile", "Billing", "Search", "Identity", "Growth", "Data", "Infrastructure",
	"Payments", "Onboarding", "Analytics", "Security", "Support", "Marketing", "Design", "Reliability",
}

var componentNames = []string{"API", "Backend", "Frontend", "Database", "Docs", "CI", "Auth", "Notifications"}

var labelWords = []string{"backend", "frontend", "tech-debt", "customer", "security", "performance", "ux", "infra", "flaky", "regression"}

var firstNames = []string{
	"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Dennis", "Radia",
	"Linus", "Frances", "John", "Katherine", "Tim", "Hedy", "Niklaus", "Sophie", "Guido", "Anita",
	"Bjarne", "Shafi", "Leslie", "Mary", "Vint", "Joan", "Whitfield", "Carol", "Yukihiro", "Karen",
	"Rob", "Lynn", "James", "Evelyn", "Martin", "Jean", "Robin", "Adele", "Tony", "Ivan",
}

var lastNames = []string{
	"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Ritchie", "Perlman",
	"Torvalds", "Allen", "McCarthy", "Johnson", "Berners-Lee", "Lamarr", "Wirth", "Wilson", "van Rossum", "Borg",
	"Stroustrup", "Goldwasser", "Lamport", "Shaw", "Cerf", "Clarke", "Diffie", "Shaw", "Matsumoto", "Spärck Jones",
	"Pike", "Conway", "Gosling", "Berezin", "Fowler", "Sammet", "Milner", "Goldberg", "Hoare", "Sutherland",
}

var timeZones = []string{
	"Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "Etc/UTC",
	"America/Los_Angeles", "Asia/Tokyo", "Europe/London", "America/Sao_Paulo", "Pacific/Auckland",
}

var words = []string{
	"add", "fix", "remove", "update", "refactor", "cache", "login", "page", "button", "report",
	"export", "import", "timeout", "error", "retry", "queue", "worker", "index", "search", "filter",
	"user", "account", "billing", "invoice", "payment", "token", "session", "config", "deploy", "build",
	"test", "flaky", "crash", "memory", "leak", "slow", "query", "database", "migration", "schema",
	"webhook", "sync", "api", "endpoint", "client", "server", "mobile", "android", "ios", "layout",
	"dark", "mode", "email", "notification", "permission", "role", "admin", "audit", "log", "metric",
	"dashboard", "chart", "onboarding", "signup", "password", "reset", "upload", "download", "file", "image",
	"resize", "locale", "translation", "timezone", "date", "format", "currency", "rounding", "limit", "quota",
	"throttle", "backoff", "alert", "oncall", "incident", "rollback", "feature", "flag", "experiment", "variant",
}

// AppUserAutomation is the accountId of Automation for Jira, an app
// account that authors many transitions on real sites (accountType "app",
// no email).
const AppUserAutomation = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
