import CSedaCore

/// The clock a runtime reads (timers, statistics, controllers): the real
/// monotonic clock, or a manual one that tests move by hand so that
/// time-dependent behaviour is deterministic.
public final class SedaClock: @unchecked Sendable {
    // @unchecked: the C clock is safe for concurrent use; the pointer never changes.
    let pointer: OpaquePointer?
    private let owned: Bool

    private init(pointer: OpaquePointer?, owned: Bool) {
        self.pointer = pointer
        self.owned = owned
    }

    deinit {
        if owned { seda_clock_destroy(pointer) }
    }

    /// The real monotonic clock.
    public static let monotonic = SedaClock(pointer: seda_clock_monotonic(), owned: false)

    /// A clock that moves only when told to, starting at `start` nanoseconds.
    public static func manual(startingAt start: Int64 = 1_000_000_000) -> SedaClock {
        var p: OpaquePointer?
        let r = seda_clock_manual_create(&p, start)
        precondition(r == 0, "seda_clock_manual_create: \(SedaError(code: r))")
        return SedaClock(pointer: p, owned: true)
    }

    /// Now, in nanoseconds.
    public var now: Int64 { seda_clock_now(pointer) }

    /// Moves a manual clock forward. Throws ``SedaError/invalidArgument`` for
    /// the monotonic clock or a negative step.
    public func advance(by duration: Duration) throws(SedaError) {
        _ = try SedaError.check(seda_clock_manual_advance(pointer, duration.saturatingNanoseconds))
    }
}

// MARK: - Durations as the C core's nanoseconds

extension Duration {
    /// Whole nanoseconds, truncated toward zero, saturating at `Int64.min`
    /// and `Int64.max` (292 years either way): the one conversion from
    /// `Duration` to the C core's `int64_t` nanoseconds, so that "a very long
    /// time" never wraps into the past.
    package var saturatingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        // |attoseconds / 1e9| < 1e9: the sum overflows only toward the sign of `whole`.
        let (sum, carry) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if carry { return whole < 0 ? .min : .max }
        return sum
    }
}

extension Duration {
    /// `ns` nanoseconds, rounded, clamped to what `Int64` holds (a measured
    /// value near the top of a histogram's range does not trap).
    package init(saturatingNanoseconds ns: Double) {
        let r = ns.rounded()
        if r.isNaN {
            self = .zero
        } else if r >= 9.2e18 {
            self = .nanoseconds(Int64.max)
        } else if r <= -9.2e18 {
            self = .nanoseconds(Int64.min)
        } else {
            self = .nanoseconds(Int64(r))
        }
    }
}

/// A caller's timeout as the C core takes it: `nil` is no limit (-1); a
/// negative duration is no wait at all (0), never "no limit".
package func timeoutNanoseconds(_ timeout: Duration?) -> Int64 {
    guard let timeout else { return -1 }
    return max(0, timeout.saturatingNanoseconds)
}

/// `a + b` for clock readings and intervals, saturating instead of
/// overflowing (a deadline "never" stays in the future).
package func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? .max : .min) : sum
}
