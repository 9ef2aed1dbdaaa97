"""A pipeline written in Python: kubevet compiles it with the KFP SDK (`kfp dsl compile`),
once per version of this file and of the SDK, then runs it like any compiled pipeline."""

from kfp import dsl


@dsl.container_component
def greet(name: str, times: int):
    return dsl.ContainerSpec(
        image="kubevet.test/busybox:1.35",
        command=["sh", "-c", 'for i in $(seq "$1"); do echo "hello, $0"; done'],
        args=[name, times],
    )


@dsl.pipeline(name="greet")
def greet_pipeline(name: str = "kubevet", times: int = 2):
    greet(name=name, times=times)
