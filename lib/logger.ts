// Where the package reports what no caller can act on: background failures, outages, bugs.
// `console` fits; so does any logger with these two methods (pino, winston).
export interface Logger {
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}
