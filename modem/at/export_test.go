package at

// queuedURCs reports how many URCs wait, and their Size in total.
func (e *Engine) queuedURCs() (n, size int) {
	e.urcMu.Lock()
	defer e.urcMu.Unlock()
	return e.urcQ.Len(), e.urcQ.Cost()
}
