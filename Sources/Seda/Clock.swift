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
        let (s, atto) = duration.components
        _ = try SedaError.check(seda_clock_manual_advance(pointer, s * 1_000_000_000 + atto / 1_000_000_000))
    }
}
