package config

import "testing"

func TestDeliveryReportsKey(t *testing.T) {
	if !Default().SMS.DeliveryReports {
		t.Error("sms.delivery_reports defaults to false, want true")
	}
	tests := []struct {
		name string
		doc  string
		env  []string
		want []string
		on   bool
	}{
		{"default", "", nil, nil, true},
		{"off", "sms:\n  delivery_reports: false\n", nil, nil, false},
		{"default with SMS off", "sms:\n  enabled: false\n", nil, nil, true},
		{"on with SMS off", "sms:\n  enabled: false\n  delivery_reports: true\n", nil,
			[]string{"t.yaml:3: sms.delivery_reports: is true but sms.enabled is false"}, true},
		{"env on with SMS off", "sms:\n  enabled: false\n", []string{"SIMGATE_SMS_DELIVERY_REPORTS=true"},
			[]string{"env SIMGATE_SMS_DELIVERY_REPORTS: sms.delivery_reports: is true but sms.enabled is false"}, true},
		{"env off", "", []string{"SIMGATE_SMS_DELIVERY_REPORTS=false"}, nil, false},
		{"not a bool", "sms:\n  delivery_reports: sometimes\n", nil,
			[]string{`t.yaml:2: sms.delivery_reports: must be true or false, got "sometimes"`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.doc), tt.env)
			checkProblems(t, err, tt.want)
			if err == nil && c.SMS.DeliveryReports != tt.on {
				t.Errorf("delivery_reports = %v, want %v", c.SMS.DeliveryReports, tt.on)
			}
		})
	}
}
