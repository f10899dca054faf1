package config

import (
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override: SIMGATE_MQTT_URL overrides
// mqtt.url, SIMGATE_DEVICE_ID overrides device_id.
const EnvPrefix = "SIMGATE_"

// envKeys maps every override variable to its dotted key.
func envKeys() map[string]string {
	m := map[string]string{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := join(prefix, strings.Split(f.Tag.Get("yaml"), ",")[0])
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key)
				continue
			}
			m[EnvPrefix+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))] = key
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return m
}

// applyEnv overrides single keys from SIMGATE_* variables. Lists take either
// a YAML flow list (["a","b"]) or comma-separated items; an empty value is an
// empty list. An unknown SIMGATE_ variable is a problem, like an unknown key.
func (l *loader) applyEnv(env []string, cfg *Config) {
	keys := envKeys()
	if l.source == nil {
		l.source = map[string]string{}
	}
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		src := "env " + name
		key, known := keys[name]
		if !known {
			l.problems = append(l.problems, Problem{File: src, Msg: "unknown override: no config key matches it"})
			continue
		}
		l.source[key] = src
		field := fieldByKey(reflect.ValueOf(cfg).Elem(), key)
		switch field.Kind() {
		case reflect.String:
			field.SetString(val)
		case reflect.Int:
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil {
				l.addf(key, "must be a whole number, got %q", val)
				continue
			}
			field.SetInt(int64(n))
		case reflect.Bool:
			b, err := strconv.ParseBool(strings.TrimSpace(val))
			if err != nil {
				l.addf(key, "must be true or false, got %q", val)
				continue
			}
			field.SetBool(b)
		case reflect.Slice:
			items, err := parseList(val)
			if err != nil {
				l.addf(key, "must be a list (comma-separated or [\"a\",\"b\"]): %v", err)
				continue
			}
			field.Set(reflect.ValueOf(items))
		}
	}
}

func parseList(val string) ([]string, error) {
	val = strings.TrimSpace(val)
	if val == "" {
		return []string{}, nil
	}
	if strings.HasPrefix(val, "[") {
		var items []string
		if err := yaml.Unmarshal([]byte(val), &items); err != nil {
			return nil, err
		}
		if items == nil {
			items = []string{}
		}
		return items, nil
	}
	parts := strings.Split(val, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

func fieldByKey(v reflect.Value, key string) reflect.Value {
	for _, part := range strings.Split(key, ".") {
		v = v.Field(structFields(v.Type())[part])
	}
	return v
}
