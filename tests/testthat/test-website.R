# The package's website (pkgdown) built with the README's command
# (tools/build-site.R), then every page opened in headless Chromium: a
# missing image, a link within the site that leads nowhere (a missing page
# or #anchor) or an R error printed in an article fails the test. Slow (the
# site renders every vignette and runs every example): full tier only.

chromium_binary <- function() {
  found <- Sys.which(c("chromium", "chromium-browser", "google-chrome"))
  found[nzchar(found)][1L]
}

# Serve `site` over HTTP on a free local port; pages must come from one
# origin so that the checking page can look inside the frames it opens.
serve_site <- function(site) {
  port <- httpuv::randomPort()
  server <- httpuv::startServer("127.0.0.1", port, list(
    staticPaths = list("/" = httpuv::staticPath(site, indexhtml = TRUE)),
    call = function(req) list(status = 404L, headers = list("Content-Type" = "text/plain"), body = "not found")
  ))
  list(server = server, url = sprintf("http://127.0.0.1:%d/", port))
}

# Open the checking page in headless Chromium (no network beyond the local
# server: other hosts resolve to nothing) and return its report, one entry
# per page.
browser_report <- function(chromium, url) {
  profile <- tempfile("chromium-profile")
  on.exit(unlink(profile, recursive = TRUE), add = TRUE)
  out <- processx::run(chromium, c(
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    paste0("--user-data-dir=", profile), "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=600000", "--dump-dom", url
  ), error_on_status = FALSE, timeout = 600)
  dom <- xml2::read_html(out$stdout)
  result <- xml2::xml_text(xml2::xml_find_first(dom, "//pre[@id='result']"))
  if (is.na(result) || identical(result, "running")) {
    stop("Chromium returned no report (status ", out$status, "): ", substr(out$stderr, 1, 2000))
  }
  jsonlite::fromJSON(result, simplifyVector = FALSE)
}

test_that("the website builds, and every page opens in Chromium with no broken link, missing image or R error", {
  skip_unless_full_tests()
  # under the sanitizers (LD_PRELOAD of the ASan runtime) Chromium cannot
  # run; the plain run of the suite covers the website
  skip_if(grepl("asan", Sys.getenv("LD_PRELOAD")), "the website is tested in the plain run, not under the sanitizers")
  for (p in c("pkgdown", "httpuv", "processx", "jsonlite", "xml2")) skip_if_not_installed(p)
  chromium <- chromium_binary()
  expect_false(is.na(chromium), info = "Chromium is not installed: run sh tools/install-deps.sh --browser")
  if (is.na(chromium)) return(invisible())

  root <- normalizePath(test_path("..", ".."))
  site <- tempfile("site")
  on.exit(unlink(site, recursive = TRUE), add = TRUE)
  lib <- dirname(system.file(package = "mlmfit"))
  build <- processx::run(file.path(R.home("bin"), "Rscript"),
                         c(file.path(root, "tools", "build-site.R"), site, "--installed", lib),
                         wd = root, error_on_status = FALSE)
  expect_equal(build$status, 0L, info = substr(paste(build$stdout, build$stderr), 1, 5000))
  if (build$status != 0L) return(invisible())

  pages <- list.files(site, pattern = "[.]html$", recursive = TRUE)
  articles <- sub("[.]Rmd$", ".html", list.files(file.path(root, "vignettes"), pattern = "[.]Rmd$"))
  expect_true(all(file.path("articles", articles) %in% pages))
  expect_true(all(c("index.html", "reference/index.html", "articles/index.html", "news/index.html") %in% pages))
  template <- readLines(test_path("fixtures", "browser-check.html"))
  writeLines(sub("PAGES_JSON", jsonlite::toJSON(pages), template, fixed = TRUE), file.path(site, "_browser-check.html"))

  served <- serve_site(site)
  on.exit(httpuv::stopServer(served$server), add = TRUE)
  report <- browser_report(chromium, paste0(served$url, "_browser-check.html"))

  expect_setequal(names(report), pages)
  problems <- as.character(unlist(lapply(names(report), function(p) {
    if (length(report[[p]]$problems) == 0L) return(NULL)
    paste0(p, ": ", unlist(report[[p]]$problems))
  })))
  expect_length(problems, 0L)
  if (length(problems) > 0L) cat("\nProblems the browser found:\n", paste(problems, collapse = "\n"), "\n")
  # the articles' figures are there and loaded
  images <- vapply(report[file.path("articles", articles)], function(r) r$images, numeric(1))
  expect_gt(sum(images), 20)
})

test_that("the browser check finds a missing image, a broken link, a broken anchor and an R error", {
  skip_unless_full_tests()
  skip_if(grepl("asan", Sys.getenv("LD_PRELOAD")), "the website is tested in the plain run, not under the sanitizers")
  for (p in c("httpuv", "processx", "jsonlite", "xml2")) skip_if_not_installed(p)
  chromium <- chromium_binary()
  expect_false(is.na(chromium), info = "Chromium is not installed: run sh tools/install-deps.sh --browser")
  if (is.na(chromium)) return(invisible())
  site <- tempfile("bad-site")
  dir.create(site)
  on.exit(unlink(site, recursive = TRUE), add = TRUE)
  writeLines('<html><body><h1 id="top">fine</h1><a href="#top">up</a></body></html>', file.path(site, "good.html"))
  writeLines(c('<html><body><img src="figure.png"><a href="nowhere.html">x</a><a href="good.html#gone">y</a>',
               '<pre><code>#&gt; Error in f(): object not found</code></pre></body></html>'),
             file.path(site, "bad.html"))
  template <- readLines(test_path("fixtures", "browser-check.html"))
  writeLines(sub("PAGES_JSON", jsonlite::toJSON(c("good.html", "bad.html")), template, fixed = TRUE),
             file.path(site, "_browser-check.html"))
  served <- serve_site(site)
  on.exit(httpuv::stopServer(served$server), add = TRUE)
  report <- browser_report(chromium, paste0(served$url, "_browser-check.html"))
  expect_length(report$good.html$problems, 0L)
  found <- unlist(report$bad.html$problems)
  expect_length(found, 4L)
  expect_true(any(startsWith(found, "missing image: figure.png")))
  expect_true(any(startsWith(found, "broken link: nowhere.html")))
  expect_true(any(startsWith(found, "broken anchor: good.html#gone")))
  expect_true(any(startsWith(found, "R error in the output")))
})
