/// Whether a program exports spans: the one rule `unid`, `uni` and
/// `uni-otel` share.
public enum TraceExportSwitch {
    /// The standard variables that turn OTLP export on without a flag.
    public static let environmentVariables = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]

    /// On when `address` (`--trace-addr`) is non-empty, or else when one of
    /// ``environmentVariables`` is set and non-empty.
    public static func isOn(address: String?, environment: EnvironmentLookup) -> Bool {
        if let address, !address.isEmpty { return true }
        return environmentVariables.contains { !(environment[$0] ?? "").isEmpty }
    }
}
