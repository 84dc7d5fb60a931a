from libs.service_app import main
from services.member.app import definition

main(definition)
