import Glibc

/// An HTTP date in IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT"), 29
/// bytes held inline (no allocation), with the second it names.
public struct HTTPDate: Sendable, Equatable {
    /// The byte length of an IMF-fixdate.
    public static let length = 29
    /// Seconds since the Unix epoch.
    public let seconds: Int64
    // 29 bytes in 32 of inline storage.
    private var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    /// The date `seconds` after the epoch, formatted (no Foundation).
    public init(seconds: Int64) {
        self.seconds = seconds
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civilDate(fromDays: days)
        let weekday = Int(((days % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
        withUnsafeMutableBytes(of: &storage) { out in
            func put(_ at: Int, _ s: StaticString) {
                for k in 0..<s.utf8CodeUnitCount { out[at + k] = s.utf8Start[k] }
            }
            func two(_ at: Int, _ v: Int) {
                out[at] = UInt8(0x30 + v / 10)
                out[at + 1] = UInt8(0x30 + v % 10)
            }
            put(0, weekdayNames[weekday])
            put(3, ", ")
            two(5, day)
            out[7] = 0x20
            put(8, monthNames[month - 1])
            out[11] = 0x20
            let y = min(max(year, 0), 9999)
            two(12, y / 100)
            two(14, y % 100)
            out[16] = 0x20
            two(17, secondOfDay / 3600)
            out[19] = UInt8(ascii: ":")
            two(20, secondOfDay / 60 % 60)
            out[22] = UInt8(ascii: ":")
            two(23, secondOfDay % 60)
            put(25, " GMT")
        }
    }

    /// Calls `body` with the 29 bytes.
    @inline(__always)
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<HTTPDate.length])) }
    }

    /// The date as a string (logs and tests).
    public var string: String { withBytes { String(decoding: $0, as: UTF8.self) } }

    public static func == (a: HTTPDate, b: HTTPDate) -> Bool { a.seconds == b.seconds }

    /// The current time, from the coarse real-time clock (a vDSO read; its
    /// few milliseconds of granularity do not matter to a date in seconds).
    public static func nowSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        return Int64(ts.tv_sec)
    }

    /// Parses an HTTP-date in any of the three forms a recipient must accept
    /// (RFC 9110 5.6.7): IMF-fixdate, RFC 850 ("Sunday, 06-Nov-94 08:49:37
    /// GMT") and asctime ("Sun Nov  6 08:49:37 1994"). Returns seconds since
    /// the epoch, or nil when the value is not a valid date (a recipient then
    /// ignores the header).
    public static func parse(_ v: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        let n = v.count
        func digits(_ count: Int) -> Int? {
            guard i + count <= n else { return nil }
            var x = 0
            for k in 0..<count {
                let c = v[i + k]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                x = x * 10 + Int(c - 0x30)
            }
            i += count
            return x
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < n, v[i] == c else { return false }
            i += 1
            return true
        }
        func month() -> Int? {
            guard i + 3 <= n else { return nil }
            let m = UnsafeRawBufferPointer(rebasing: v[i..<(i + 3)])
            for (k, name) in monthNames.enumerated() where equalsIgnoringCase(m, name) {
                i += 3
                return k + 1
            }
            return nil
        }
        func time() -> (Int, Int, Int)? {
            guard let h = digits(2), expect(UInt8(ascii: ":")), let m = digits(2), expect(UInt8(ascii: ":")),
                let s = digits(2), h < 24, m < 60, s <= 60
            else { return nil }
            return (h, m, min(s, 59))
        }
        func gmt() -> Bool {
            guard i + 4 == n else { return false }
            return v[i] == 0x20 && v[i + 1] == UInt8(ascii: "G") && v[i + 2] == UInt8(ascii: "M")
                && v[i + 3] == UInt8(ascii: "T")
        }
        // The day name: letters up to ',' or ' '.
        while i < n, (v[i] | 0x20) >= 0x61, (v[i] | 0x20) <= 0x7A { i += 1 }
        guard i >= 3, i < n else { return nil }
        let day: Int, mon: Int, year: Int, hms: (Int, Int, Int)
        if v[i] == UInt8(ascii: ",") {
            i += 1
            guard expect(0x20), let d = digits(2) else { return nil }
            if expect(0x20) {  // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
                guard let m = month(), expect(0x20), let y = digits(4), expect(0x20), let t = time(), gmt()
                else { return nil }
                (day, mon, year, hms) = (d, m, y, t)
            } else {  // RFC 850: 06-Nov-94 08:49:37 GMT
                guard expect(UInt8(ascii: "-")), let m = month(), expect(UInt8(ascii: "-")), let yy = digits(2),
                    expect(0x20), let t = time(), gmt()
                else { return nil }
                // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
                (day, mon, year, hms) = (d, m, yy < 70 ? 2000 + yy : 1900 + yy, t)
            }
        } else {  // asctime: Nov  6 08:49:37 1994
            guard expect(0x20), let m = month(), expect(0x20) else { return nil }
            if i < n, v[i] == 0x20 { i += 1 }
            var d = 0
            var nd = 0
            while i < n, nd < 2, v[i] >= 0x30, v[i] <= 0x39 {
                d = d * 10 + Int(v[i] - 0x30)
                i += 1
                nd += 1
            }
            guard nd > 0, expect(0x20), let t = time(), expect(0x20), let y = digits(4), i == n else { return nil }
            (day, mon, year, hms) = (d, m, y, t)
        }
        guard day >= 1, day <= daysIn(month: mon, year: year) else { return nil }
        let days = daysFromCivil(year: year, month: mon, day: day)
        return days * 86_400 + Int64(hms.0 * 3600 + hms.1 * 60 + hms.2)
    }
}

/// The current IMF-fixdate, formatted once per second. One per thread (a
/// worker's stage replica, a dedicated stage): not for concurrent use.
public struct HTTPDateCache {
    private var date = HTTPDate(seconds: 0)
    private var valid = false
    private let now: @Sendable () -> Int64

    /// `now`: seconds since the epoch (default: the real-time clock).
    public init(now: @escaping @Sendable () -> Int64 = HTTPDate.nowSeconds) {
        self.now = now
    }

    /// Today's date, reformatted only when the second has changed.
    @inline(__always)
    public mutating func current() -> HTTPDate {
        let s = now()
        if !valid || s != date.seconds {
            date = HTTPDate(seconds: s)
            valid = true
        }
        return date
    }
}

private let weekdayNames: [StaticString] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
private let monthNames: [StaticString] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
]

private func equalsIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: StaticString) -> Bool {
    guard a.count == b.utf8CodeUnitCount else { return false }
    for k in 0..<a.count where a[k] | 0x20 != b.utf8Start[k] | 0x20 { return false }
    return true
}

private func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

private func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: return isLeap(year) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, counting in 400-year
/// eras of 146,097 days with years starting in March (the leap day last).
func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
    let y = Int64(month <= 2 ? year - 1 : year)
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let shiftedMonth = Int64(month > 2 ? month - 3 : month + 9)
    let dayOfYear = (153 * shiftedMonth + 2) / 5 + Int64(day) - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}

/// The inverse of ``daysFromCivil(year:month:day:)``.
func civilDate(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let shiftedMonth = (5 * dayOfYear + 2) / 153
    let day = Int(dayOfYear - (153 * shiftedMonth + 2) / 5 + 1)
    let month = Int(shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9)
    let year = Int(yearOfEra + era * 400) + (month <= 2 ? 1 : 0)
    return (year, month, day)
}
