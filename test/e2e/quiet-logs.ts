// Imported first by the end-to-end tests: the in-process handlers' Powertools loggers read the
// level when created, and their INFO lines and EMF metrics would bury the test output.
process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
export {};
