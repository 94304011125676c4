package deploycheck_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// repoRoot walks up from the test's working directory to the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cfnValue is a template value that may be an intrinsic function. Short tags become their JSON
// form (!Ref X → {"Ref": "X"}, !Sub s → {"Fn::Sub": s}), so values compare with == on String().
type cfnValue struct{ v any }

func (c *cfnValue) UnmarshalYAML(n *yaml.Node) error {
	v, err := plainValue(n)
	c.v = v
	return err
}

// String is the canonical JSON of the value.
func (c cfnValue) String() string {
	b, err := json.Marshal(c.v)
	if err != nil {
		return fmt.Sprintf("%v", c.v)
	}
	return string(b)
}

// Ref returns the name given to !Ref, if the value is one.
func (c cfnValue) Ref() (string, bool) {
	m, ok := c.v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	name, ok := m["Ref"].(string)
	return name, ok
}

// Text returns a plain string, or the template string of !Sub.
func (c cfnValue) Text() (string, bool) {
	if s, ok := c.v.(string); ok {
		return s, true
	}
	if m, ok := c.v.(map[string]any); ok && len(m) == 1 {
		s, ok := m["Fn::Sub"].(string)
		return s, ok
	}
	return "", false
}

func plainValue(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return plainValue(n.Content[0])
	case yaml.AliasNode:
		return plainValue(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			val, err := plainValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := plainValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		v = n.Value
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
	}
	if tag, ok := strings.CutPrefix(n.Tag, "!"); ok && !strings.HasPrefix(tag, "!") {
		if tag != "Ref" && tag != "Condition" {
			tag = "Fn::" + tag
		}
		v = map[string]any{tag: v}
	}
	return v, nil
}

// samTemplate is the part of template.yaml the checks read. Function properties are decoded
// from the node of each AWS::Serverless::Function only, so other resources' shapes do not matter.
type samTemplate struct {
	Parameters map[string]struct {
		Type           string   `yaml:"Type"`
		AllowedValues  []string `yaml:"AllowedValues"`
		Default        *string  `yaml:"Default"`
		Description    string   `yaml:"Description"`
		AllowedPattern string   `yaml:"AllowedPattern"`
		MinLength      *int     `yaml:"MinLength"`
	} `yaml:"Parameters"`
	Globals struct {
		Function functionProps `yaml:"Function"`
	} `yaml:"Globals"`
	Resources map[string]struct {
		Type      string   `yaml:"Type"`
		Condition string   `yaml:"Condition"`
		DependsOn cfnValue `yaml:"DependsOn"`
		Metadata  struct {
			BuildMethod string `yaml:"BuildMethod"`
		} `yaml:"Metadata"`
		Properties yaml.Node `yaml:"Properties"`
	} `yaml:"Resources"`
	Outputs map[string]struct {
		Value cfnValue `yaml:"Value"`
	} `yaml:"Outputs"`
}

type functionProps struct {
	Runtime       string   `yaml:"Runtime"`
	Handler       string   `yaml:"Handler"`
	Architectures []string `yaml:"Architectures"`
	CodeUri       string   `yaml:"CodeUri"`
	Timeout       int      `yaml:"Timeout"`
	MemorySize    int      `yaml:"MemorySize"`
	LoggingConfig struct {
		LogGroup cfnValue `yaml:"LogGroup"`
	} `yaml:"LoggingConfig"`
	ReservedConcurrentExecutions *cfnValue `yaml:"ReservedConcurrentExecutions"`
	AutoPublishAlias             string    `yaml:"AutoPublishAlias"`
	EventInvokeConfig            *struct {
		MaximumRetryAttempts     *int `yaml:"MaximumRetryAttempts"`
		MaximumEventAgeInSeconds *int `yaml:"MaximumEventAgeInSeconds"`
	} `yaml:"EventInvokeConfig"`
	Environment struct {
		Variables map[string]cfnValue `yaml:"Variables"`
	} `yaml:"Environment"`
	Policies []cfnValue       `yaml:"Policies"`
	Events   map[string]event `yaml:"Events"`
}

type event struct {
	Type       string `yaml:"Type"`
	Properties struct {
		ApiId                cfnValue `yaml:"ApiId"`
		Method               string   `yaml:"Method"`
		Path                 string   `yaml:"Path"`
		PayloadFormatVersion string   `yaml:"PayloadFormatVersion"`
		ScheduleExpression   string   `yaml:"ScheduleExpression"`
		RetryPolicy          *struct {
			MaximumRetryAttempts     *int `yaml:"MaximumRetryAttempts"`
			MaximumEventAgeInSeconds *int `yaml:"MaximumEventAgeInSeconds"`
		} `yaml:"RetryPolicy"`
	} `yaml:"Properties"`
}

// function is one AWS::Serverless::Function with Globals applied where SAM applies them.
type function struct {
	LogicalID   string
	Folder      string // base name of CodeUri: the name httpapi.Route.Function uses
	Condition   string // the template condition it is deployed under ("": always)
	BuildMethod string
	Props       functionProps
	Env         map[string]cfnValue // Globals' variables, overridden by the function's own
}

func (f function) secretPolicyARNs() []string {
	var arns []string
	for _, p := range f.Props.Policies {
		m, ok := p.v.(map[string]any)
		if !ok {
			continue
		}
		inner, ok := m["AWSSecretsManagerGetSecretValuePolicy"].(map[string]any)
		if !ok {
			continue
		}
		arns = append(arns, cfnValue{inner["SecretArn"]}.String())
	}
	return arns
}

type deployment struct {
	Raw       []byte
	Template  samTemplate
	Functions []function // sorted by Folder
}

func (d deployment) function(t *testing.T, folder string) function {
	t.Helper()
	for _, f := range d.Functions {
		if f.Folder == folder {
			return f
		}
	}
	t.Fatalf("template.yaml has no function with CodeUri functions/%s", folder)
	return function{}
}

func loadTemplate(t *testing.T) deployment {
	t.Helper()
	raw := readRepoFile(t, "template.yaml")
	var tmpl samTemplate
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	d := deployment{Raw: raw, Template: tmpl}
	global := tmpl.Globals.Function
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		var p functionProps
		if err := r.Properties.Decode(&p); err != nil {
			t.Fatalf("template.yaml: %s properties: %v", id, err)
		}
		f := function{LogicalID: id, Folder: filepath.Base(p.CodeUri), Condition: r.Condition, BuildMethod: r.Metadata.BuildMethod, Props: p}
		// SAM's Globals: scalars are overridden by the function, Environment.Variables are merged.
		f.Props.Runtime = cmp.Or(p.Runtime, global.Runtime)
		f.Props.Handler = cmp.Or(p.Handler, global.Handler)
		if p.Architectures == nil {
			f.Props.Architectures = global.Architectures
		}
		if p.Timeout == 0 {
			f.Props.Timeout = global.Timeout
		}
		if p.MemorySize == 0 {
			f.Props.MemorySize = global.MemorySize
		}
		if p.LoggingConfig.LogGroup.v == nil {
			f.Props.LoggingConfig = global.LoggingConfig
		}
		if p.ReservedConcurrentExecutions == nil {
			f.Props.ReservedConcurrentExecutions = global.ReservedConcurrentExecutions
		}
		if p.EventInvokeConfig == nil {
			f.Props.EventInvokeConfig = global.EventInvokeConfig
		}
		f.Env = make(map[string]cfnValue)
		for k, v := range global.Environment.Variables {
			f.Env[k] = v
		}
		for k, v := range p.Environment.Variables {
			f.Env[k] = v
		}
		d.Functions = append(d.Functions, f)
	}
	slices.SortFunc(d.Functions, func(a, b function) int { return strings.Compare(a.Folder, b.Folder) })
	return d
}
