import CSedaCore
import Glibc
import Testing

@testable import Seda

@Suite("SedaError")
struct SedaErrorTests {
    /// Every code in the C core's error table (SEDA_ERRNO_MAP) becomes a
    /// case that maps back to it and is described by the table's message:
    /// none falls through to "unknown" or to a generic "system error".
    @Test func everyCodeInTheTableHasItsMessage() {
        let codes = (0..<256).map { seda_err_code_at($0) }.prefix { $0 != 0 }
        #expect(codes.count > 20, "the table as the C core walks it")
        for c in codes {
            let message = String(cString: seda_strerror(-c))
            let error = SedaError(code: -c)
            #expect(error.code == -c, "\(String(cString: seda_err_name(c))) maps back to itself")
            #expect(error.description == message, "\(String(cString: seda_err_name(c)))")
            #expect(SedaError(code: c) == error, "either sign")
        }
    }

    /// The codes the runtime gives a meaning to have cases of their own; the
    /// I/O layer's are `system`, described all the same.
    @Test func namedCasesAndSystemCodes() {
        #expect(SedaError(code: -EBUSY) == .busy)
        #expect(SedaError(code: -ENOENT) == .notFound)
        #expect(SedaError(code: -EALREADY) == .alreadyDone)
        #expect(SedaError(code: -ECONNRESET) == .system(errno: ECONNRESET))
        #expect("\(SedaError.system(errno: ECONNREFUSED))" == "connection refused")
        #expect("\(SedaError.system(errno: EMFILE))" == "too many open files in this process")
        // Outside the table: the C library's description, with the number.
        #expect("\(SedaError.system(errno: EROFS))".contains("\(EROFS)"))
        #expect(!"\(SedaError.system(errno: EROFS))".contains("unknown"))
        // Int32.min has no positive errno: no trap.
        #expect(SedaError(code: .min) == .system(errno: .max))
    }
}
