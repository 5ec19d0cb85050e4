/// Uni's version: the one place it is written. `uni --version`, `unid
/// --version`, `GET /v1/info` and the `version` label of `uni_build_info`
/// all print it (a test compares the binaries with a real unid's /metrics).
public enum UniVersion {
    /// The semantic version of this build.
    public static let current = "0.1.0"
}
