import Glibc

/// The page cache: a byte-bounded LRU of file contents and their prebuilt
/// response heads, keyed by normalised request path.
///
/// A hit is checked against the file only every ``revalidateAfter``
/// (nginx's `open_file_cache_valid` idea): a lookup past that returns
/// ``Lookup/stale(_:)`` once, so one request takes the page to the file
/// stage to compare the file's identity (size, mtime, inode) and the others
/// keep being served meanwhile; a changed file is read anew and replaces the
/// entry. Entries over ``maxEntryBytes`` are not kept (large files go out
/// with sendfile). Pinned entries (built-in pages) are never evicted nor
/// revalidated.
///
/// Lookups take no allocation (the key is the caller's bytes). Thread rules:
/// any thread; one lock around the table (uncontended when each worker has
/// its own cache, as replicated stages allow).
public final class PageCache: @unchecked Sendable {
    // @unchecked: all mutable state is inside `table`'s lock.
    /// Bytes of content (and heads) the cache may hold.
    public let capacityBytes: Int
    /// The largest entry kept.
    public let maxEntryBytes: Int
    /// How long a hit is trusted before its file is checked again.
    public let revalidateAfter: Duration
    private let revalidateNanoseconds: Int64
    /// The table, behind a pthread mutex (visible to ThreadSanitizer) and a
    /// pointer (no dynamic exclusivity check: the mutex is the exclusion).
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let tablePointer: UnsafeMutablePointer<Table>

    /// What a lookup found.
    public enum Lookup {
        /// Serve it.
        case hit(CachedPage)
        /// Serve it after checking the file (this caller is the one to check;
        /// others get `.hit` until ``revalidated(_:page:now:)`` or
        /// ``insert(_:page:now:)``).
        case stale(CachedPage)
        case miss
    }

    /// Counters since creation.
    public struct Statistics: Sendable, Equatable {
        public var hits: UInt64 = 0
        public var misses: UInt64 = 0
        public var revalidations: UInt64 = 0
        public var insertions: UInt64 = 0
        public var evictions: UInt64 = 0
        public var entries = 0
        public var bytes = 0
    }

    /// - Parameters:
    ///   - capacityBytes: bytes the cache may hold (default 64 MiB).
    ///   - maxEntryBytes: largest page kept (default 1 MiB, at most the capacity).
    ///   - revalidateAfter: how long a hit is trusted (default 1 s).
    public init(
        capacityBytes: Int = 64 << 20, maxEntryBytes: Int = 1 << 20,
        revalidateAfter: Duration = .seconds(1)
    ) {
        self.capacityBytes = max(capacityBytes, 0)
        self.maxEntryBytes = min(max(maxEntryBytes, 0), self.capacityBytes)
        self.revalidateAfter = revalidateAfter
        let (s, a) = revalidateAfter.components
        revalidateNanoseconds =
            s >= Int64.max / 1_000_000_000 ? Int64.max : max(0, s * 1_000_000_000 + a / 1_000_000_000)
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        tablePointer = .allocate(capacity: 1)
        tablePointer.initialize(to: Table())
    }

    deinit {
        tablePointer.deinitialize(count: 1)
        tablePointer.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` on the table with the mutex held.
    @inline(__always)
    private func withTable<R>(_ body: (inout Table) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&tablePointer.pointee)
    }

    /// Finds `key` (a normalised path). `now`: a monotonic time in
    /// nanoseconds (the same clock for every call).
    @inline(__always)
    public func lookup(_ key: UnsafeRawBufferPointer, now: Int64) -> Lookup {
        let h = hashKey(key)
        let revalidate = revalidateNanoseconds
        return withTable { t in
            guard let i = t.find(key, hash: h) else {
                t.stats.misses += 1
                return .miss
            }
            t.stats.hits += 1
            t.touch(i)
            let page = t.slots[i].page!
            if !t.slots[i].pinned && !t.slots[i].revalidating
                && now &- t.slots[i].validatedAt >= revalidate
            {
                t.slots[i].revalidating = true
                t.stats.revalidations += 1
                return .stale(page)
            }
            return .hit(page)
        }
    }

    /// `lookup` on a string key (tests, cold paths).
    public func lookup(_ key: String, now: Int64) -> Lookup {
        var k = key
        return k.withUTF8 { lookup(UnsafeRawBufferPointer($0), now: now) }
    }

    /// Adds or replaces the page for `key`, evicting least recently used
    /// entries to stay within the capacity. Returns false (and keeps
    /// nothing) when the page is larger than ``maxEntryBytes``.
    @discardableResult
    public func insert(_ key: UnsafeRawBufferPointer, page: CachedPage, now: Int64, pinned: Bool = false) -> Bool {
        let size = page.footprint + key.count
        if !pinned && (page.body.count > maxEntryBytes || size > capacityBytes) { return false }
        let h = hashKey(key)
        let keyBytes = Array(key)
        let capacity = capacityBytes
        // Evicted pages are released after the lock is dropped.
        var evicted: [CachedPage] = []
        withTable { t in
            if let i = t.find(key, hash: h) { evicted.append(t.remove(i)) }
            t.add(key: keyBytes, hash: h, page: page, size: size, now: now, pinned: pinned)
            t.stats.insertions += 1
            while t.stats.bytes > capacity, let victim = t.lruTail {
                evicted.append(t.remove(victim))
                t.stats.evictions += 1
            }
        }
        return true
    }

    /// `insert` on a string key.
    @discardableResult
    public func insert(_ key: String, page: CachedPage, now: Int64, pinned: Bool = false) -> Bool {
        var k = key
        return k.withUTF8 { insert(UnsafeRawBufferPointer($0), page: page, now: now, pinned: pinned) }
    }

    /// The file behind a ``Lookup/stale(_:)`` page is unchanged: trust the
    /// entry for another ``revalidateAfter``. Does nothing if the entry was
    /// replaced or evicted meanwhile.
    public func revalidated(_ key: UnsafeRawBufferPointer, page: CachedPage, now: Int64) {
        let h = hashKey(key)
        withTable { t in
            guard let i = t.find(key, hash: h), t.slots[i].page === page else { return }
            t.slots[i].validatedAt = now
            t.slots[i].revalidating = false
        }
    }

    /// The check of a ``Lookup/stale(_:)`` page could not be made (the
    /// file stage refused the work): the next lookup returns `.stale` again.
    public func abandonRevalidation(_ key: UnsafeRawBufferPointer, page: CachedPage) {
        let h = hashKey(key)
        withTable { t in
            guard let i = t.find(key, hash: h), t.slots[i].page === page else { return }
            t.slots[i].revalidating = false
        }
    }

    /// Drops the entry for `key` (a changed or vanished file).
    public func remove(_ key: UnsafeRawBufferPointer) {
        let h = hashKey(key)
        let page: CachedPage? = withTable { t in
            guard let i = t.find(key, hash: h) else { return nil }
            return t.remove(i)
        }
        _ = page
    }

    /// Drops every entry that is not pinned.
    public func removeAll() {
        let pages: [CachedPage] = withTable { t in
            var out: [CachedPage] = []
            while let i = t.lruTail { out.append(t.remove(i)) }
            return out
        }
        _ = pages
    }

    /// Counters and occupancy now.
    public var statistics: Statistics { withTable { $0.stats } }
}

/// FNV-1a, 64 bits: short keys, no allocation.
@inline(__always)
func hashKey(_ key: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in key {
        h ^= UInt64(b)
        h &*= 0x0000_0100_0000_01b3
    }
    return h
}

/// The cache's table: slots in an array (no reference counting on the LRU
/// links), chained hash buckets of slot indices, an intrusive LRU list.
private struct Table {
    struct Slot {
        var key: [UInt8] = []
        var hash: UInt64 = 0
        var page: CachedPage? = nil
        var size = 0
        var validatedAt: Int64 = 0
        var revalidating = false
        var pinned = false
        /// Next slot in the same bucket, or -1.
        var chain: Int32 = -1
        /// LRU neighbours (towards the most / least recently used), or -1.
        var newer: Int32 = -1
        var older: Int32 = -1
    }

    var slots: [Slot] = []
    var buckets: [Int32] = Array(repeating: -1, count: 64)
    var free: [Int32] = []
    var newest: Int32 = -1
    var oldest: Int32 = -1
    var stats = PageCache.Statistics()

    var lruTail: Int? { oldest < 0 ? nil : Int(oldest) }

    @inline(__always)
    func find(_ key: UnsafeRawBufferPointer, hash: UInt64) -> Int? {
        var i = buckets[Int(hash & UInt64(buckets.count - 1))]
        return slots.withUnsafeBufferPointer { s -> Int? in
            while i >= 0 {
                if s[Int(i)].hash == hash && s[Int(i)].key.count == key.count
                    && s[Int(i)].key.withUnsafeBytes({ k in
                        key.count == 0 || memcmp(k.baseAddress!, key.baseAddress!, key.count) == 0
                    })
                {
                    return Int(i)
                }
                i = s[Int(i)].chain
            }
            return nil
        }
    }

    /// Moves slot `i` to the most recently used end.
    @inline(__always)
    mutating func touch(_ i: Int) {
        if slots[i].pinned || newest == Int32(i) { return }
        unlinkLRU(i)
        linkNewest(i)
    }

    mutating func add(key: [UInt8], hash: UInt64, page: CachedPage, size: Int, now: Int64, pinned: Bool) {
        if (stats.entries + 1) * 4 > buckets.count * 3 { grow() }
        let i: Int
        if let f = free.popLast() {
            i = Int(f)
        } else {
            i = slots.count
            slots.append(Slot())
        }
        let b = Int(hash & UInt64(buckets.count - 1))
        slots[i] = Slot(
            key: key, hash: hash, page: page, size: size, validatedAt: now, revalidating: false,
            pinned: pinned, chain: buckets[b], newer: -1, older: -1)
        buckets[b] = Int32(i)
        if !pinned { linkNewest(i) }
        stats.entries += 1
        stats.bytes += size
    }

    /// Removes slot `i` and returns its page (to release outside the lock).
    mutating func remove(_ i: Int) -> CachedPage {
        let b = Int(slots[i].hash & UInt64(buckets.count - 1))
        if buckets[b] == Int32(i) {
            buckets[b] = slots[i].chain
        } else {
            var j = Int(buckets[b])
            while slots[j].chain != Int32(i) { j = Int(slots[j].chain) }
            slots[j].chain = slots[i].chain
        }
        if !slots[i].pinned { unlinkLRU(i) }
        let page = slots[i].page!
        stats.entries -= 1
        stats.bytes -= slots[i].size
        slots[i] = Slot()
        free.append(Int32(i))
        return page
    }

    private mutating func unlinkLRU(_ i: Int) {
        let newer = slots[i].newer, older = slots[i].older
        if newer >= 0 { slots[Int(newer)].older = older } else { newest = older }
        if older >= 0 { slots[Int(older)].newer = newer } else { oldest = newer }
        slots[i].newer = -1
        slots[i].older = -1
    }

    private mutating func linkNewest(_ i: Int) {
        slots[i].older = newest
        slots[i].newer = -1
        if newest >= 0 { slots[Int(newest)].newer = Int32(i) }
        newest = Int32(i)
        if oldest < 0 { oldest = Int32(i) }
    }

    private mutating func grow() {
        buckets = Array(repeating: -1, count: buckets.count * 2)
        let mask = UInt64(buckets.count - 1)
        for i in slots.indices where slots[i].page != nil {
            let b = Int(slots[i].hash & mask)
            slots[i].chain = buckets[b]
            buckets[b] = Int32(i)
        }
    }
}
