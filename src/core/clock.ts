// Injected time. In workerd Date.now() only advances across I/O, and tests need frozen time.

/** Returns the current time in milliseconds since the epoch. */
export type Clock = () => number;

/** The real clock. */
export const systemClock: Clock = () => Date.now();
