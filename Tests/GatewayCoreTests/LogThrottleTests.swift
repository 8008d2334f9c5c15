@testable import GatewayCore
import NIOCore
import Testing

/// The throttle of repeated log lines: once per interval and kind, with the count of what it left out.
@Suite("Log throttle")
struct LogThrottleTests {
    @Test func saysEachKindOncePerIntervalWithWhatItLeftOut() {
        let throttle = LogThrottle(interval: .seconds(10))
        let start = NIODeadline.uptimeNanoseconds(5_000_000_000)
        #expect(throttle.admit("slow consumer", now: start) == 0)
        #expect(throttle.admit("slow consumer", now: start + .seconds(1)) == nil)
        #expect(throttle.admit("slow consumer", now: start + .seconds(9)) == nil)
        // Another kind has its own interval.
        #expect(throttle.admit("404 ", now: start + .seconds(9)) == 0)
        #expect(throttle.admit("slow consumer", now: start + .seconds(10)) == 2)
        #expect(throttle.admit("slow consumer", now: start + .seconds(11)) == nil)
        #expect(throttle.admit("slow consumer", now: start + .seconds(25)) == 1)
    }
}
