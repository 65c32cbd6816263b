package api

import (
	"cmp"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// OpenAPI builds the OpenAPI 3.0 document for routes. Schemas come from the
// Go types by reflection (json tags), so the document describes exactly what
// the handlers decode and encode.
func OpenAPI(routes []Route, version string) map[string]any {
	g := &schemaGen{components: map[string]any{}}
	paths := map[string]any{}
	for _, rt := range routes {
		p := Prefix + rt.Path
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt),
			"tags":        []string{rt.Tag},
			// x-permission states the route's role check for readers and
			// for the test that holds the table and the document together.
			"x-permission": string(rt.Perm),
		}
		if rt.Perm == PermPublic {
			op["security"] = []any{}
		}
		var params []any
		for _, name := range pathParams(rt.Path) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			s := map[string]any{"type": cmp.Or(q.Type, "string")}
			if len(q.Enum) > 0 {
				s["enum"] = q.Enum
			}
			prm := map[string]any{"name": q.Name, "in": "query", "schema": s}
			if q.Description != "" {
				prm["description"] = q.Description
			}
			params = append(params, prm)
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != nil || rt.BodyType != "" {
			bt := cmp.Or(rt.BodyType, "application/json")
			schema := map[string]any{"type": "string"}
			if rt.Body != nil {
				schema = g.schema(reflect.TypeOf(rt.Body))
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{bt: map[string]any{"schema": schema}}}
		}
		status := rt.Status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": http.StatusText(status)}
		if status != http.StatusNoContent {
			rtype := cmp.Or(rt.RespType, "application/json")
			schema := map[string]any{"type": "string"}
			if rt.Resp != nil {
				schema = g.schema(reflect.TypeOf(rt.Resp))
			}
			ok["content"] = map[string]any{rtype: map[string]any{"schema": schema}}
		}
		errResp := map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(ErrorBody{}))}}}
		op["responses"] = map[string]any{itoa(status): ok, "default": errResp}
		item[strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "Patchward API",
			"version":     version,
			"description": "Risk-based, audit-ready patch management for clinics and clinical laboratories. Authenticate with `Authorization: Bearer <token>` (create one with `patchward user token create`) or a browser session.",
		},
		"servers":  []any{map[string]any{"url": "/"}},
		"security": []any{map[string]any{"bearer": []string{}}, map[string]any{"session": []string{}}},
		"paths":    paths,
		"components": map[string]any{
			"schemas": g.components,
			"securitySchemes": map[string]any{
				"bearer":  map[string]any{"type": "http", "scheme": "bearer"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": "patchward_session"},
			},
		},
	}
}

var wildcard = regexp.MustCompile(`\{([a-zA-Z_]+)(\.\.\.)?\}`)

func pathParams(path string) []string {
	var out []string
	for _, m := range wildcard.FindAllStringSubmatch(path, -1) {
		out = append(out, m[1])
	}
	return out
}

func operationID(rt Route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, seg := range strings.Split(rt.Path, "/") {
		seg = strings.Trim(seg, "{}.")
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

type schemaGen struct {
	components map[string]any
	// types records which Go type holds each component name: two packages'
	// types of one name (match.Summary, risk.Summary) must not share a
	// schema.
	types map[string]reflect.Type
}

var timeType = reflect.TypeOf(time.Time{})

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Pointer:
		s := g.schema(t.Elem())
		if ref, ok := s["$ref"]; ok {
			return map[string]any{"allOf": []any{map[string]any{"$ref": ref}}, "nullable": true}
		}
		out := map[string]any{"nullable": true}
		for k, v := range s {
			out[k] = v
		}
		return out
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.structSchema(t)
		}
		if g.types == nil {
			g.types = map[string]reflect.Type{}
		}
		if prev, taken := g.types[name]; taken && prev != t {
			// The first type keeps the short name; later ones are
			// qualified by package ("RiskSummary").
			pkg := path.Base(t.PkgPath())
			name = strings.ToUpper(pkg[:1]) + pkg[1:] + name
		}
		g.types[name] = t
		if _, done := g.components[name]; !done {
			g.components[name] = map[string]any{} // break cycles
			g.components[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			if sub, ok := g.structSchema(f.Type)["properties"].(map[string]any); ok {
				for k, v := range sub {
					props[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
	}
	return map[string]any{"type": "object", "properties": props}
}

func itoa(n int) string { return strconv.Itoa(n) }
