// Package jiraconnect holds the files that ship inside the binary: the Connect
// descriptor template and the HTML templates of the pages shown in Jira.
// They live at the repository root so that people find them where Atlassian's
// documentation and the README say they are.
package jiraconnect

import "embed"

// Descriptor is the atlassian-connect.json template; see internal/descriptor.
//
//go:embed atlassian-connect.json
var Descriptor []byte

// OpenAPI is the OpenAPI document of the HTTP surface (YAML; served as JSON).
//
//go:embed openapi.yaml
var OpenAPI []byte

// Templates holds templates/*.html.
//
//go:embed templates
var Templates embed.FS
