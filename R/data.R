#' NELS:88 mathematics achievement in 23 schools
#'
#' The 23-school subset of the US National Education Longitudinal Study of
#' 1988 used by Kreft and de Leeuw (1998) to introduce multilevel analysis:
#' 519 eighth-grade students in 23 schools. Schools 24725 and 62821 are the
#' two schools of the classic two-school lesson.
#'
#' @format A data frame with 519 rows and 18 columns:
#' \describe{
#'   \item{schid}{school identifier}
#'   \item{stuid}{student identifier within school}
#'   \item{ses}{socio-economic status of the student's family (standardised)}
#'   \item{meanses}{mean `ses` of the school}
#'   \item{homework}{hours per week spent on mathematics homework (0-7)}
#'   \item{white}{1 = white, 0 = not white}
#'   \item{parented}{parents' highest education level (1-6)}
#'   \item{public}{1 = public school, 0 = private}
#'   \item{ratio}{student-teacher ratio of the school}
#'   \item{percmin}{percentage of minority students in the school (coded 0-7)}
#'   \item{math}{mathematics test score (30-71)}
#'   \item{sex}{1 = male, 2 = female}
#'   \item{race}{1 = Asian, 2 = Hispanic, 3 = Black, 4 = White, 5 = Native American}
#'   \item{sctype}{school type: 1 = public, 2 = Catholic, 3 = other religious, 4 = private non-religious}
#'   \item{cstr}{classroom environment structure (ordinal, 1-5)}
#'   \item{scsize}{school size (ordinal, 1-7)}
#'   \item{urban}{1 = urban, 2 = suburban, 3 = rural}
#'   \item{region}{geographic region (1-3 in this subset)}
#' }
#' @source UCLA Statistical Consulting, `imm23.dta`, distributing the data of
#'   Kreft, I. and de Leeuw, J. (1998) *Introducing Multilevel Modeling*,
#'   Sage. Built by `data-raw/nels88.R`; see the package's `data-raw` folder.
#' @examples
#' # the empty model reproduces Kreft & de Leeuw's Table 4.2 (ML):
#' # intercept 50.76 (SE 1.13), variances 24.85 and 81.24
#' lmm(math ~ 1 + (1 | schid), nels88, REML = FALSE)
"nels88"
