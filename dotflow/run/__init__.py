"""Running a workflow: the task engine, the execution modes, child processes, resume, and the journal as a run uses it."""
