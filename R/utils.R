# Conditions written for a person, with classes that code and tests can catch.

mlm_abort <- function(message, class = NULL, ..., .envir = parent.frame()) {
  cli::cli_abort(message, class = c(class, "mlmfit_error"), ..., .envir = .envir, call = NULL)
}

mlm_warn <- function(message, class = NULL, ..., .envir = parent.frame()) {
  cli::cli_warn(message, class = c(class, "mlmfit_warning"), ..., .envir = .envir)
}

mlm_inform <- function(message, class = NULL, ..., .envir = parent.frame()) {
  cli::cli_inform(message, class = c(class, "mlmfit_message"), ..., .envir = .envir)
}

# Register an S3 method on a generic of a package in Suggests, now if it is
# loaded and otherwise when it loads.
s3_register <- function(generic, class, method) {
  force(method)  # registration may run later: a promise would see a changed loop variable
  pieces <- strsplit(generic, "::", fixed = TRUE)[[1L]]
  package <- pieces[[1L]]
  name <- pieces[[2L]]
  register <- function(...) {
    envir <- asNamespace(package)
    if (exists(name, envir = envir, inherits = FALSE)) {
      registerS3method(name, class, method, envir = envir)
    }
  }
  setHook(packageEvent(package, "onLoad"), register)
  if (isNamespaceLoaded(package)) register()
  invisible()
}

`%||%` <- function(x, y) if (is.null(x)) y else x

# A positive whole number argument (nsim, cores), as an integer.
positive_count <- function(x, arg) {
  x <- suppressWarnings(as.integer(x))
  if (length(x) != 1L || is.na(x) || x < 1L) {
    mlm_abort("{.arg {arg}} must be a positive whole number.", "mlmfit_error_argument")
  }
  x
}

# A confidence level strictly between 0 and 1.
check_level <- function(level) {
  if (!is.numeric(level) || length(level) != 1L || !(level > 0 && level < 1)) {
    mlm_abort("{.arg level} must be a number between 0 and 1.", "mlmfit_error_argument")
  }
}

# Arguments a method received in `...` and does not use: a warning naming
# them (lme4's predict() and simulate() warn too), never silence. Called as
# warn_unused_dots(..., method = "predict"); `hint` says what to use instead.
warn_unused_dots <- function(..., method, hint = NULL) {
  if (...length() == 0L) return(invisible())
  args <- as.list(substitute(list(...)))[-1L]
  nms <- names(args) %||% rep("", length(args))
  shown <- ifelse(nzchar(nms), nms, vapply(args, function(a) deparse1(a, nlines = 1L), ""))
  unnamed <- !nzchar(nms)
  shown[unnamed] <- paste0("(unnamed) ", shown[unnamed])
  mlm_warn(c("{.fn {method}} does not use {cli::qty(length(shown))}the argument{?s} {.arg {shown}}: {cli::qty(length(shown))}{?it is/they are} ignored.",
             i = hint),
           "mlmfit_warning_unused_argument", arguments = shown)
}
