# Builds data/hsb.rda: High School and Beyond (Raudenbush and Bryk), from
# nlme's MathAchieve (7185 students) and MathAchSchool (160 schools), with
# the school-level variables joined to the students and SES centred at the
# school file's MEANSES, as in the lecture notes the hsb vignette follows.
# Run from the package root: Rscript data-raw/hsb.R
utils::data("MathAchieve", package = "nlme", envir = environment())
utils::data("MathAchSchool", package = "nlme", envir = environment())
students <- as.data.frame(MathAchieve)
schools <- as.data.frame(MathAchSchool)
stopifnot(nrow(students) == 7185L, nrow(schools) == 160L)
at <- match(as.character(students$School), as.character(schools$School))
stopifnot(!anyNA(at), all(students$MEANSES == schools$MEANSES[at]))
hsb <- data.frame(
  school = factor(as.character(students$School), levels = as.character(schools$School)),
  minority = students$Minority,
  sex = students$Sex,
  ses = students$SES,
  mathach = students$MathAch,
  meanses = schools$MEANSES[at],
  cses = students$SES - schools$MEANSES[at],
  sector = schools$Sector[at],
  size = as.integer(schools$Size[at]),
  pracad = schools$PRACAD[at],
  disclim = schools$DISCLIM[at],
  himinty = as.integer(as.character(schools$HIMINTY[at]))
)
# The school file's MEANSES lies 0.0055 to 0.0065 above the mean SES of the
# sampled students of every school, so cses has mean -0.006 in each school.
gap <- schools$MEANSES - tapply(students$SES, factor(students$School, levels = schools$School), mean)
stopifnot(all(gap > 0.0054 & gap < 0.0066))
save(hsb, file = "data/hsb.rda", compress = "xz")
