# Draws the website's logo, man/figures/logo.png (points: pupils, in
# circles: classes, in a hexagon: a school), and the favicons in
# pkgdown/favicon/ (made here, so that pkgdown does not ask a web service
# for them). Run from the package root: Rscript pkgdown/logo.R
draw_logo <- function(file, width, height, text = TRUE) {
  grDevices::png(file, width = width, height = height, bg = "transparent")
  on.exit(grDevices::dev.off())
  graphics::par(mar = c(0, 0, 0, 0))
  graphics::plot.new()
  graphics::plot.window(c(-1.05, 1.05), c(-1.22, 1.22), asp = 1)
  angles <- pi / 2 + seq(0, 2 * pi, length.out = 7)
  graphics::polygon(cos(angles), 1.15 * sin(angles), col = "#0B4F6C", border = "#01BAEF", lwd = max(1, width / 40))
  set.seed(3)
  centres <- if (text) list(c(-0.36, 0.42), c(0.36, 0.42), c(0, -0.18)) else list(c(-0.36, 0.3), c(0.36, 0.3), c(0, -0.35))
  for (centre in centres) {
    graphics::symbols(centre[1], centre[2], circles = 0.24, inches = FALSE, add = TRUE, fg = "#FBFBFF",
                      lwd = max(1, width / 80))
    graphics::points(centre[1] + stats::runif(6, -0.13, 0.13), centre[2] + stats::runif(6, -0.13, 0.13),
                     pch = 19, col = "#01BAEF", cex = width / 150)
  }
  if (text) graphics::text(0, -0.72, "mlmfit", col = "#FBFBFF", cex = width / 104, font = 2)
}
dir.create("man/figures", showWarnings = FALSE, recursive = TRUE)
draw_logo("man/figures/logo.png", 240, 278)
dir.create("pkgdown/favicon", showWarnings = FALSE, recursive = TRUE)
icons <- c(`favicon-16x16.png` = 16, `favicon-32x32.png` = 32, `apple-touch-icon.png` = 180,
           `apple-touch-icon-120x120.png` = 120, `apple-touch-icon-76x76.png` = 76, `apple-touch-icon-60x60.png` = 60)
for (f in names(icons)) draw_logo(file.path("pkgdown/favicon", f), icons[[f]], icons[[f]], text = FALSE)
