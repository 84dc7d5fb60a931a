from libs.service_app import main
from services.distribution.app import definition

main(definition)
