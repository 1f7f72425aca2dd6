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

#' Two classrooms: pretest and posttest (constructed)
#'
#' The data of the two-classrooms lesson: does a pretest predict a posttest
#' when the students come from two classes whose mean posttest differs? 60
#' students, 30 in each of two classrooms. The lesson's own data were never
#' published, so these were **constructed** so that every number the lesson
#' prints comes out of them, to the digits it prints:
#'
#' * the regression that ignores the classrooms: intercept 65, slope 0.2,
#'   \eqn{R^2} = .055, residual SD 11.9, mean residual +4.9 in `class1` and
#'   -4.9 in `class2`;
#' * the regression with a classroom dummy: 70 + 0.2 pretest - 10 class,
#'   \eqn{R^2} = .22, residual SD 10.9;
#' * one regression per classroom: intercepts 70 and 60, slopes 0.2;
#' * the random-intercept model `posttest ~ (1 | classroom.d) + pretest.c`
#'   by REML: classroom variance 44.72 (SD 6.688), residual variance 118.52
#'   (SD 10.887), intercept 65.0333 (SE 4.9333, t 13.182), slope of
#'   `pretest.c` 0.2089 (SE 0.1036, t 2.017).
#'
#' **How.** Both classrooms have the same mean pretest (50), and each has 30
#' students. Then every one of these numbers is a closed-form function of
#' five statistics: the mean posttest \eqn{\bar y}, the difference \eqn{D}
#' of the two classroom means of posttest, and the pooled within-classroom
#' sums of squares and products \eqn{W_{xx}}, \eqn{W_{xy}}, \eqn{W_{yy}}.
#' The slope is \eqn{W_{xy}/W_{xx}} in every model; the REML residual
#' variance is the within-classroom residual sum of squares
#' \eqn{W_{yy} - W_{xy}^2/W_{xx}} over 57 degrees of freedom; the variance of
#' a classroom mean, \eqn{\sigma^2/30 + \tau^2}, is estimated by
#' \eqn{D^2/2}; the intercept is \eqn{\bar y} with standard error \eqn{D/2};
#' the slope's standard error is \eqn{\sqrt{\sigma^2/W_{xx}}}. The printed
#' numbers thus fix a small window for each statistic; the data are drawn
#' at random (pretest in whole points, posttest to three decimals) and
#' adjusted to a point inside every window. Whole-number posttest scores
#' cannot reproduce the lesson: their mean would be 3902/60, and the
#' intercept's t value would print as 13.183 rather than 13.182.
#' `data-raw/twoclassrooms.R` (in the package sources) does the construction
#' and checks every number.
#'
#' The lesson's figures sit close to rounding boundaries (the classroom
#' variance, 44.7248, is 0.0002 below the point where it would print as
#' 44.73), so a fitter must find the REML optimum to about six significant
#' digits to print them; [lmm()] and `lme4::lmer()` both do.
#'
#' @format A data frame with 60 rows and 5 columns:
#' \describe{
#'   \item{classroom}{factor, `class1` or `class2`}
#'   \item{classroom.d}{dummy code of the classroom: 0 = `class1`, 1 = `class2` (the lesson's grouping variable)}
#'   \item{pretest}{pretest score (whole points; mean 50 in each classroom)}
#'   \item{pretest.c}{`pretest` centred at its grand mean: `pretest - 50`}
#'   \item{posttest}{posttest score (three decimals)}
#' }
#' @source Constructed; see Details and `data-raw/twoclassrooms.R`.
#' @seealso `vignette("two-classrooms", package = "mlmfit")`
#' @examples
#' # the lesson's random-intercept model: 44.72, 118.52, 65.0333, 0.2089
#' fit <- lmm(posttest ~ (1 | classroom.d) + pretest.c, twoclassrooms)
#' VarCorr(fit)
#' fixef(fit)
#' # the regression that ignores the classrooms: R-squared .055, SD 11.9
#' collapsed <- lm(posttest ~ pretest.c, twoclassrooms)
#' c(summary(collapsed)$r.squared, sigma(collapsed))
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

#' High School and Beyond: mathematics achievement in 160 schools
#'
#' Raudenbush and Bryk's example: 7185 students in 160 US high schools (90
#' public, 70 Catholic) with their mathematics achievement and
#' socio-economic status (SES), and school characteristics joined to every
#' student. Built from `nlme::MathAchieve` (students) and
#' `nlme::MathAchSchool` (schools).
#'
#' `meanses` is the school file's mean SES (`MEANSES`), and `cses` is SES
#' centred at it: `ses - meanses`. This is the centring of the lecture notes
#' that the High School and Beyond vignette follows, and it reproduces
#' every figure they print. The school file's mean lies 0.006 above the
#' mean SES of the sampled students of each school (0.0055 to 0.0065), so
#' `cses` averages -0.006 within every school; centring at the sample
#' means instead (as `center_within(hsb$ses, hsb$school)` does, and as
#' `mlmRev::Hsb82` and Raudenbush and Bryk's Table 4.5 do) moves the
#' intercepts by about 0.006 times the SES slope: 12.11 in the notes, 12.13
#' in the book.
#'
#' @format A data frame with 7185 rows and 12 columns:
#' \describe{
#'   \item{school}{school identifier (factor, 160 levels)}
#'   \item{minority}{factor: is the student from an ethnic minority? `No`, `Yes`}
#'   \item{sex}{factor: `Male`, `Female`}
#'   \item{ses}{socio-economic status of the student's family (standardised)}
#'   \item{mathach}{mathematics achievement score (the outcome)}
#'   \item{meanses}{mean SES of the school (the school file's `MEANSES`)}
#'   \item{cses}{`ses - meanses`: the student's SES relative to the school}
#'   \item{sector}{factor: `Public` or `Catholic` school}
#'   \item{size}{number of students enrolled in the school}
#'   \item{pracad}{proportion of the school's students on the academic track}
#'   \item{disclim}{disciplinary climate of the school (a scale)}
#'   \item{himinty}{1 if more than 40 percent of the school's students are from minorities, else 0}
#' }
#' @source `MathAchieve` and `MathAchSchool` of the nlme package; built by
#'   `data-raw/hsb.R`.
#' @references Raudenbush, S. W. and Bryk, A. S. (2002). *Hierarchical Linear
#'   Models: Applications and Data Analysis Methods*, 2nd ed. Thousand Oaks:
#'   Sage.
#' @seealso `vignette("hsb", package = "mlmfit")`
#' @examples
#' # the empty model: grand mean 12.64, variances 8.61 (schools) and 39.15
#' fit <- lmm(mathach ~ 1 + (1 | school), hsb)
#' VarCorr(fit)
#' icc(fit)
"hsb"

#' Nurses planning to leave their jobs (simulated, London hospitals design)
#'
#' A simulated stand-in for the survey of nurses in London hospitals used by
#' multilevel lecture notes (Barron 2018) to introduce multilevel logistic
#' regression: 1389 nurses in 18 hospitals, and whether each plans to leave
#' the job within three years. The survey's data are not public, so these
#' data are **simulated** with the design the notes describe and with the
#' notes' `glmer` estimates as the true values: log-odds of leaving
#' \eqn{3.02 - 0.75\,\mathrm{fam} - 0.93\,\mathrm{valued} - 0.05\,\mathrm{age}
#' + 0.28\,\mathrm{male} - 0.73\,\mathrm{outer} + u_h}, with hospital
#' effects \eqn{u_h \sim N(0, 0.18^2)}. Hospitals have 45 to 125 nurses;
#' nine are in inner and nine in outer London. Ages are drawn around 36
#' (19 to 64), except for four records of age 18 that the notes' model
#' leaves out with `subset = age > 18` (leaving 1385 nurses); about one nurse
#' in eight is male. A fit to these data estimates the truth, not the notes'
#' numbers: they come from other data.
#'
#' @format A data frame with 1389 rows and 7 columns:
#' \describe{
#'   \item{HOSPITAL}{hospital (factor, 18 levels)}
#'   \item{INN_OUT}{factor: `Inner London` or `Outer London` (a hospital-level variable)}
#'   \item{leave}{factor: does the nurse plan to leave within three years? `no`, `yes` (the outcome)}
#'   \item{fam}{factor: family responsibilities, `no` or `yes`}
#'   \item{valued}{factor: does the nurse feel valued at work? `no` or `yes`}
#'   \item{age}{age in years}
#'   \item{sex}{factor: `female` or `male`}
#' }
#' @source Simulated by `data-raw/nurseturnover.R` (seed 1).
#' @seealso `vignette("nurse-turnover", package = "mlmfit")`
#' @examples
#' fit <- glmm(leave ~ fam + valued + age + sex + INN_OUT + (1 | HOSPITAL), nurseturnover,
#'             family = binomial, subset = age > 18)
#' fixef(fit)
#' # intraclass correlation on the latent scale
#' s2 <- VarCorr(fit)$HOSPITAL[1, 1]
#' s2 / (s2 + pi^2 / 3)
"nurseturnover"
