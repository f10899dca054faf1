package config

// validateDeliveryReports checks sms.delivery_reports. Its default (true)
// is harmless with SMS off, but setting it on while sms.enabled is false
// asks for reports on SMS that are never sent: a mistake worth naming.
func (l *loader) validateDeliveryReports(s *SMS) {
	const key = "sms.delivery_reports"
	_, inFile := l.lines[key]
	_, inEnv := l.source[key]
	if s.DeliveryReports && !s.Enabled && (inFile || inEnv) {
		l.addf(key, "is true but sms.enabled is false: no SMS is sent, so no report can come (set sms.enabled: true or drop %s)", key)
	}
}
