# Writes the generated version.cpp with the current git commit, run at every build (not only at
# configure time), so that results never record a stale commit. A tree with uncommitted changes to
# tracked files gets a "-dirty" suffix. The file is only rewritten when its content changes, so an
# unchanged commit rebuilds nothing.
#   cmake -DSOURCE_DIR=... -DINPUT=version.cpp.in -DOUTPUT=.../version.cpp -DPROJECT_VERSION=... -P write_version.cmake
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE TSTAR_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                RESULT_VARIABLE rev_parse_failed)
if(rev_parse_failed OR NOT TSTAR_GIT_COMMIT)
  set(TSTAR_GIT_COMMIT "unknown")
else()
  execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SOURCE_DIR}
                  OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(changes)
    string(APPEND TSTAR_GIT_COMMIT "-dirty")
  endif()
endif()
configure_file(${INPUT} ${OUTPUT} @ONLY)
