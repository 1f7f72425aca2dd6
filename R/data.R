#' NELS:88 mathematics achievement in 23 schools
#'
#' The 23-school subset of the US National Education Longitudinal Study of
#' 1988 used by Kreft and de Leeuw (1998) to introduce multilevel analysis:
#' 519 eighth-grade students in 23 schools. Schools 24725 and 62821 are the
#' two schools of the classic two-school lesson: 22 students in public
#' school 24725 and 67 in private school 62821, whose separate regressions of
#' `math` on `homework` have slopes 5.59 and 1.09.
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

#' Two classrooms: pretest and posttest (simulated)
#'
#' The data of the two-classrooms lesson: does a pretest predict a posttest
#' when the students come from two classes whose mean posttest differs? 60
#' students, 30 in each of two classrooms. Separate regressions give
#' intercepts near 70 and 60 with slopes near 0.2; the regression that
#' ignores the classrooms gives an intercept near 65 and residuals that are
#' mostly positive in one class and negative in the other.
#'
#' The lesson's own data were never published, so these are **simulated**
#' (by `data-raw/twoclassrooms.R`, seed 308): `pretest` is drawn from a
#' normal distribution with mean 50 and SD 14 and rounded; `posttest` is
#' 70 (class1) or 60 (class2), plus 0.2 times the centred pretest, plus
#' normal noise with SD 10.9, rounded. The seed is the first from 1 upward
#' for which the lesson's rounded figures hold (separate intercepts 70 and
#' 60, collapsed intercept 65, all slopes 0.2).
#'
#' @format A data frame with 60 rows and 4 columns:
#' \describe{
#'   \item{classroom}{factor, `class1` or `class2`}
#'   \item{pretest}{pretest score (points)}
#'   \item{pretest.c}{`pretest` centred at its grand mean (`pretest - mean(pretest)`)}
#'   \item{posttest}{posttest score (points)}
#' }
#' @source Simulated; see Details and `data-raw/twoclassrooms.R`.
#' @examples
#' # separate regressions, then the random-intercept model
#' coef(lm(posttest ~ pretest.c, twoclassrooms, subset = classroom == "class1"))
#' coef(lm(posttest ~ pretest.c, twoclassrooms, subset = classroom == "class2"))
#' lmm(posttest ~ pretest.c + (1 | classroom), twoclassrooms)
"twoclassrooms"

#' Junior School Project: mathematics and English in 49 London schools
#'
#' The Junior School Project (Mortimore et al. 1988) followed pupils of
#' primary schools in inner London through three years of junior school:
#' 3236 records of 1192 pupils in 94 classes of 49 schools. A pupil has up to
#' three records, one for each school year. Pupils are nested in classes,
#' classes in schools: the standard three-level example (Goldstein 1987).
#'
#' @format A data frame with 3236 rows and 9 columns:
#' \describe{
#'   \item{school}{school identifier (1-50; school 43 has no records)}
#'   \item{class}{class within school (1-4); `school:class` identifies a class}
#'   \item{id}{pupil identifier (1-1402, unique across schools)}
#'   \item{gender}{factor: `girl` (codebook code 0) or `boy` (code 1)}
#'   \item{social}{factor: father's social class, in the codebook's order 1-9:
#'     `I`, `II`, `III non-manual`, `III manual`, `IV`, `V`,
#'     `long-term unemployed`, `not currently employed`, `father absent`}
#'   \item{raven}{Raven's test (an ability measure) in year 1 (4-36)}
#'   \item{english}{English test score (0-98)}
#'   \item{math}{mathematics test score (1-40)}
#'   \item{year}{junior school year: 0, 1 or 2}
#' }
#' @source The Bristol Centre for Multilevel Modelling teaching-data library
#'   (`JSP.DAT` with its codebook `JSP.ASC`), via a public copy; identical
#'   column by column to the `jsp` data of Faraway's *Linear Models with R*.
#'   Built by `data-raw/jsp.R`.
#' @references Mortimore, P., Sammons, P., Stoll, L., Lewis, D. and Ecob, R.
#'   (1988). *School Matters: The Junior Years*. Wells: Open Books.
#'
#'   Goldstein, H. (1987). *Multilevel Models in Educational and Social
#'   Research*. London: Griffin.
#' @examples
#' # three levels in the last year: pupils in classes in schools
#' fit <- lmm(math ~ 1 + (1 | school) + (1 | school:class), jsp, subset = year == 2)
#' VarCorr(fit)
#' icc(fit)
"jsp"

#' Stress of nurses in wards and hospitals (Hox)
#'
#' Hox, Moerbeek and van de Schoot's three-level example: 1000 nurses in 100
#' wards of 25 hospitals. In each hospital some wards were assigned to an
#' experimental stress-management programme (`expcon`), a ward-level
#' treatment whose effect may vary across hospitals and depend on hospital
#' size.
#'
#' @format A data frame with 1000 rows and 20 columns:
#' \describe{
#'   \item{hospital}{hospital identifier (1-25)}
#'   \item{ward}{ward within hospital (1-4)}
#'   \item{wardid}{ward identifier, unique across hospitals}
#'   \item{nurse}{nurse identifier (1-1000)}
#'   \item{age}{age of the nurse (years)}
#'   \item{gender}{0 = male, 1 = female}
#'   \item{experien}{years of experience as a nurse}
#'   \item{stress}{job-related stress score (the outcome)}
#'   \item{wardtype}{0 = general care, 1 = special care}
#'   \item{hospsize}{hospital size: 0 = small, 1 = medium, 2 = large}
#'   \item{expcon}{0 = control ward, 1 = experimental ward}
#'   \item{Zage, Zgender, Zexperien, Zstress, Zwardtype, Zhospsize, Zexpcon}{z-scores of the variables}
#'   \item{Cexpcon}{`expcon - 0.5`}
#'   \item{Chospsize}{`hospsize - 1`}
#' }
#' @source The data repository of Hox, Moerbeek and van de Schoot (2018),
#'   chapter 2, `Nurses.sav`. Built by `data-raw/nurses.R`.
#' @references Hox, J. J., Moerbeek, M. and van de Schoot, R. (2018).
#'   *Multilevel Analysis: Techniques and Applications*, 3rd ed. New York:
#'   Routledge.
#' @examples
#' # the empty three-level model (ML): variances 0.489 (ward),
#' # 0.162 (hospital) and 0.301 (nurse)
#' fit <- lmm(stress ~ 1 + (1 | hospital) + (1 | hospital:ward), nurses, REML = FALSE)
#' VarCorr(fit)
#' icc(fit)
"nurses"

#' Popularity of pupils in 100 classes (Hox popular2)
#'
#' Hox's main two-level example: the popularity of 2000 pupils in 100
#' classes, rated by their classmates, with the pupils' extraversion and sex
#' and their teacher's experience as predictors.
#'
#' @format A data frame with 2000 rows and 15 columns:
#' \describe{
#'   \item{pupil}{pupil identifier within class}
#'   \item{class}{class identifier (1-100)}
#'   \item{extrav}{extraversion of the pupil (1-10)}
#'   \item{sex}{0 = boy, 1 = girl}
#'   \item{texp}{experience of the teacher (years)}
#'   \item{popular}{popularity rated by the classmates (0-10, one decimal; the outcome)}
#'   \item{popteach}{popularity rated by the teacher (1-7)}
#'   \item{Zextrav, Zsex, Ztexp, Zpopular, Zpopteach}{z-scores of the variables}
#'   \item{Cextrav, Ctexp}{`extrav` and `texp` centred at their grand means}
#'   \item{Csex}{`sex - 0.5`}
#' }
#' @source The data repository of Hox, Moerbeek and van de Schoot (2018),
#'   chapter 2, `popular2.sav`. Built by `data-raw/popular.R`.
#' @references Hox, J. J., Moerbeek, M. and van de Schoot, R. (2018).
#'   *Multilevel Analysis: Techniques and Applications*, 3rd ed. New York:
#'   Routledge.
#' @examples
#' # the book's model with a random slope for extraversion (ML): fixed
#' # effects 0.74, 0.45, 1.25 and 0.09; deviance 4812.8
#' fit <- lmm(popular ~ extrav + sex + texp + (extrav | class), popular, REML = FALSE)
#' fixef(fit)
#' deviance(fit)
"popular"
